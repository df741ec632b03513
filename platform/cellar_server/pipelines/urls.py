"""Page routes of the pipeline dashboards."""

from django.urls import path

from cellar_server.pipelines import notice_pages, run_pages, views

app_name = "pipelines"

PIPELINES = "t/<slug:team_slug>/pipelines/"
PIPELINE = PIPELINES + "<str:pipeline_name>/"
RUN = PIPELINE + "runs/<int:run_number>/"
TASK = RUN + "tasks/<int:task_id>/"

urlpatterns = [
    path(PIPELINES, views.pipeline_list, name="list"),
    # Before the <pipeline_name> routes: "notifications" is then not a pipeline's page.
    path(PIPELINES + "notifications/", notice_pages.notifications_page, name="notifications"),
    path(PIPELINES + "notifications/webhook/", notice_pages.webhook_update, name="webhook"),
    path(PIPELINES + "notifications/seen/", notice_pages.notices_seen, name="notices-seen"),
    path(PIPELINES + "notifications/badge/", notice_pages.notices_badge, name="notices-badge"),
    path(PIPELINE, views.pipeline_detail, name="pipeline"),
    path(PIPELINE + "versions/<str:ref>/", views.version_detail, name="version"),
    path(PIPELINE + "compare/", views.compare, name="compare"),
    path(PIPELINE + "production/", views.promote, name="promote"),
    path(PIPELINE + "production/rollback/", views.rollback, name="rollback"),
    path(PIPELINE + "runs/", run_pages.run_list, name="runs"),
    path(RUN, run_pages.run_detail, name="run"),
    path(RUN + "live/", run_pages.run_live, name="run-live"),
    path(RUN + "tasks/", run_pages.run_tasks, name="run-tasks"),
    path(RUN + "cancel/", run_pages.run_cancel, name="run-cancel"),
    path(RUN + "resume/", run_pages.run_resume, name="run-resume"),
    path(TASK, run_pages.task_detail, name="task"),
    path(TASK + "retry/", run_pages.task_retry_view, name="task-retry"),
]
