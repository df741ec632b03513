"""/api/v1/teams/<team>/pipelines/… routes."""

from django.urls import path

from cellar_server.pipelines import apis, engine_apis, run_apis

PIPELINES = "teams/<slug:team_slug>/pipelines/"
PIPELINE = PIPELINES + "<str:pipeline_name>/"
RUN = PIPELINE + "runs/<int:run_number>/"

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
    # runs (engine/run_apis.py)
    path(
        PIPELINE + "runs/", run_apis.PipelineRunApi.as_view({"get": "list", "post": "create"}), name="pipeline-run-list"
    ),
    path(RUN, run_apis.PipelineRunApi.as_view({"get": "retrieve"}), name="pipeline-run-detail"),
    path(RUN + "cancel/", run_apis.PipelineRunApi.as_view({"post": "cancel"}), name="pipeline-run-cancel"),
    path(RUN + "resume/", run_apis.PipelineRunApi.as_view({"post": "resume"}), name="pipeline-run-resume"),
    path(RUN + "tasks/", run_apis.PipelineRunApi.as_view({"get": "tasks"}), name="pipeline-run-tasks"),
    path(
        RUN + "tasks/<int:task_id>/",
        run_apis.PipelineTaskApi.as_view({"get": "retrieve"}),
        name="pipeline-run-task",
    ),
    path(
        RUN + "tasks/<int:task_id>/blobs/<str:sha256>/",
        run_apis.PipelineTaskApi.as_view({"get": "blob"}),
        name="pipeline-run-task-blob",
    ),
    path(
        RUN + "tasks/<int:task_id>/retry/",
        run_apis.PipelineTaskApi.as_view({"post": "retry"}),
        name="pipeline-run-task-retry",
    ),
    # the worker API: pool agents, authenticated by per-task tokens (engine_apis.py)
    path("engine/claims/", engine_apis.ClaimsApi.as_view(), name="engine-claims"),
    path("engine/heartbeats/", engine_apis.HeartbeatsApi.as_view(), name="engine-heartbeats"),
    path("engine/results/", engine_apis.ResultsApi.as_view(), name="engine-results"),
]

# Schedules of a pipeline's production version (engine). Kept in their own block and import so
# that the engine's other routes can be added beside them without touching these lines.
from cellar_server.pipelines import schedule_apis  # noqa: E402

urlpatterns += [
    path(
        PIPELINE + "schedules/",
        schedule_apis.PipelineScheduleApi.as_view({"get": "list", "post": "create"}),
        name="pipeline-schedule-list",
    ),
    path(
        PIPELINE + "schedules/<int:schedule_id>/",
        schedule_apis.PipelineScheduleApi.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="pipeline-schedule-detail",
    ),
]
