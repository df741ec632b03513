"""/api/v1/teams/<team>/… routes of the data layer (see apis.py)."""

from django.urls import path

from cellar_server.data import apis

T = "teams/<slug:team_slug>/"
SHA = "<str:sha256>"

urlpatterns = [
    path(T + "secrets/", apis.SecretViewSet.as_view({"get": "list", "post": "create"}), name="data-secret-list"),
    path(
        T + "secrets/<int:pk>/",
        apis.SecretViewSet.as_view({"patch": "partial_update", "delete": "destroy"}),
        name="data-secret-detail",
    ),
    path(T + "secrets/<slug:name>/value/", apis.SecretValueApi.as_view(), name="data-secret-value"),
    path(
        T + "connections/",
        apis.ConnectionViewSet.as_view({"get": "list", "post": "create"}),
        name="data-connection-list",
    ),
    path(
        T + "connections/<int:pk>/",
        apis.ConnectionViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="data-connection-detail",
    ),
    path(
        T + "connections/<int:pk>/test/",
        apis.ConnectionViewSet.as_view({"post": "test"}),
        name="data-connection-test",
    ),
    path(T + "connections/<slug:name>/resolve/", apis.ConnectionResolveApi.as_view(), name="data-connection-resolve"),
    path(T + "datasets/", apis.DatasetViewSet.as_view({"get": "list"}), name="data-dataset-list"),
    path(T + "datasets/<int:pk>/", apis.DatasetViewSet.as_view({"get": "retrieve"}), name="data-dataset-detail"),
    path(T + "dataset-inputs/", apis.DatasetInputApi.as_view(), name="data-dataset-inputs"),
    path(T + "dataset-snapshots/" + SHA + "/", apis.DatasetSnapshotApi.as_view(), name="data-dataset-snapshot"),
    path(T + "retention/", apis.RetentionViewSet.as_view({"get": "retrieve", "put": "update"}), name="data-retention"),
    path(T + "gc/", apis.GcViewSet.as_view({"get": "list", "post": "create"}), name="data-gc"),
]
