"""Page routes of the tracking dashboards (experiments, runs, compare)."""

from django.urls import path

from cellar_server.tracking import views

app_name = "tracking"

TEAM = "t/<slug:team_slug>/"

urlpatterns = [
    path(TEAM + "experiments/", views.experiments, name="experiments"),
    path(TEAM + "experiments/<int:number>/", views.experiment_runs, name="experiment"),
    path(TEAM + "experiments/<int:number>/columns/", views.experiment_columns, name="experiment-columns"),
    path(TEAM + "runs/<str:run_uuid>/", views.run_detail, name="run"),
    path(TEAM + "runs/<str:run_uuid>/artifacts/", views.run_artifacts, name="run-artifacts"),
    path(TEAM + "runs/<str:run_uuid>/files/<path:path>", views.run_artifact_file, name="run-artifact-file"),
    path(TEAM + "charts/metric/", views.metric_chart, name="metric-chart"),
    path(TEAM + "compare/", views.compare, name="compare"),
]
