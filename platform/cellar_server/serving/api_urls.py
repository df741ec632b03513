"""/api/v1/teams/<team>/deployments/… and /api/v1/serving/… routes."""

from django.urls import path

from cellar_server.serving import apis

DEPLOYMENTS = "teams/<slug:team_slug>/deployments/"
DEPLOYMENT = DEPLOYMENTS + "<slug:deployment_name>/"

urlpatterns = [
    path(DEPLOYMENTS, apis.DeploymentApi.as_view({"get": "list", "post": "create"}), name="deployment-list"),
    path(
        DEPLOYMENT,
        apis.DeploymentApi.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="deployment-detail",
    ),
    path(DEPLOYMENT + "traffic/", apis.DeploymentApi.as_view({"get": "traffic"}), name="deployment-traffic"),
    path(DEPLOYMENT + "drift/", apis.DeploymentApi.as_view({"get": "drift"}), name="deployment-drift"),
    path(
        DEPLOYMENT + "keys/",
        apis.DeploymentKeyApi.as_view({"get": "list", "post": "create"}),
        name="deployment-key-list",
    ),
    path(
        DEPLOYMENT + "keys/<int:key_id>/",
        apis.DeploymentKeyApi.as_view({"delete": "destroy"}),
        name="deployment-key-detail",
    ),
    path("serving/routes/", apis.RoutesApi.as_view(), name="serving-routes"),
    path("serving/health/", apis.HealthApi.as_view(), name="serving-health"),
    path("serving/predictions/", apis.PredictionsApi.as_view(), name="serving-predictions"),
]
