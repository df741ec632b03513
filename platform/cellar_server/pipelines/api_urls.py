"""/api/v1/teams/<team>/pipelines/… routes."""

from django.urls import path

from cellar_server.pipelines import apis

PIPELINES = "teams/<slug:team_slug>/pipelines/"
PIPELINE = PIPELINES + "<str:pipeline_name>/"

urlpatterns = [
    path(PIPELINES, apis.PipelineApi.as_view({"get": "list"}), name="pipeline-list"),
    # Before the <pipeline_name> routes: "compile" is a reserved pipeline name.
    path(PIPELINES + "compile/", apis.PipelineCompileApi.as_view({"post": "create"}), name="pipeline-compile"),
    path(PIPELINE, apis.PipelineApi.as_view({"get": "retrieve"}), name="pipeline-detail"),
    path(
        PIPELINE + "versions/",
        apis.PipelineVersionApi.as_view({"get": "list", "post": "create"}),
        name="pipeline-version-list",
    ),
    path(
        PIPELINE + "versions/<str:ref>/",
        apis.PipelineVersionApi.as_view({"get": "retrieve"}),
        name="pipeline-version-detail",
    ),
    path(
        PIPELINE + "versions/<str:ref>/diff/<str:other>/",
        apis.PipelineVersionApi.as_view({"get": "diff"}),
        name="pipeline-version-diff",
    ),
    path(
        PIPELINE + "production/",
        apis.PipelineProductionApi.as_view({"get": "retrieve", "post": "promote"}),
        name="pipeline-production",
    ),
    path(
        PIPELINE + "production/rollback/",
        apis.PipelineProductionApi.as_view({"post": "rollback"}),
        name="pipeline-production-rollback",
    ),
]
