"""/api/v1/teams/<team>/models/… routes."""

from django.urls import path

from cellar_server.registry import apis

MODELS = "teams/<slug:team_slug>/models/"
MODEL = MODELS + "<str:name>/"

urlpatterns = [
    path(MODELS, apis.ModelApi.as_view({"get": "list"}), name="model-list"),
    path(MODELS + "-/register/", apis.RegisterApi.as_view(), name="model-register"),
    path(MODELS + "-/resolve/", apis.ResolveApi.as_view(), name="model-resolve"),
    path(MODEL, apis.ModelApi.as_view({"get": "retrieve"}), name="model-detail"),
    path(MODEL + "versions/", apis.VersionApi.as_view({"get": "list"}), name="model-version-list"),
    path(MODEL + "versions/<int:version>/", apis.VersionApi.as_view({"get": "retrieve"}), name="model-version-detail"),
    path(
        MODEL + "versions/<int:version>/files/<path:relpath>",
        apis.VersionFileApi.as_view(),
        name="model-version-file",
    ),
    path(MODEL + "aliases/", apis.AliasApi.as_view({"get": "list"}), name="model-alias-list"),
    path(
        MODEL + "aliases/<str:alias>/",
        apis.AliasApi.as_view({"put": "update", "delete": "destroy"}),
        name="model-alias-detail",
    ),
]
