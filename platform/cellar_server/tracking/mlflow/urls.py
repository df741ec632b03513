"""/t/<team>/mlflow/… : MLflow's REST paths under a team's tracking URI."""

from django.urls import path, re_path

from cellar_server.registry.mlflow import views as registry_views
from cellar_server.tracking.mlflow import views

BASE = r"^t/(?P<team_slug>[-a-zA-Z0-9_]+)/mlflow/"

urlpatterns = [
    re_path(BASE + r"(?:ajax-)?api/[23]\.0/mlflow/server-info/?$", views.server_info, name="mlflow-server-info"),
    # The model registry's endpoints: views in the registry app (cellar_server/registry/mlflow/).
    re_path(
        BASE + r"(?:ajax-)?api/[23]\.0/mlflow/(?P<endpoint>(?:registered-models|model-versions)/.+)$",
        registry_views.api,
        name="mlflow-registry-api",
    ),
    re_path(BASE + r"(?:ajax-)?api/[23]\.0/mlflow/(?P<endpoint>.+)$", views.api, name="mlflow-api"),
    re_path(BASE + r"api/[23]\.0/mlflow-artifacts/artifacts/?$", views.artifact, name="mlflow-artifacts-root"),
    re_path(BASE + r"api/[23]\.0/mlflow-artifacts/artifacts/(?P<path>.+)$", views.artifact, name="mlflow-artifact"),
    path("t/<slug:team_slug>/mlflow/version", views.version, name="mlflow-version"),
    path("t/<slug:team_slug>/mlflow/health", views.health, name="mlflow-health"),
]
