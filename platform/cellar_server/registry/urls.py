"""Page routes of the registry dashboards."""

from django.urls import path

from cellar_server.registry import views

app_name = "registry"

MODELS = "t/<slug:team_slug>/models/"
MODEL = MODELS + "<str:name>/"

urlpatterns = [
    path(MODELS, views.model_list, name="models"),
    path(MODEL, views.model_detail, name="model"),
    path(MODEL + "compare/", views.version_compare, name="compare"),
    path(MODEL + "aliases/", views.alias_set, name="alias-set"),
    path(MODEL + "versions/<int:version>/", views.version_detail, name="version"),
]
