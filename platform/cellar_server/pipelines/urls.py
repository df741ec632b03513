"""Page routes of the pipeline dashboards."""

from django.urls import path

from cellar_server.pipelines import views

app_name = "pipelines"

PIPELINES = "t/<slug:team_slug>/pipelines/"
PIPELINE = PIPELINES + "<str:pipeline_name>/"

urlpatterns = [
    path(PIPELINES, views.pipeline_list, name="list"),
    path(PIPELINE, views.pipeline_detail, name="pipeline"),
    path(PIPELINE + "versions/<str:ref>/", views.version_detail, name="version"),
    path(PIPELINE + "compare/", views.compare, name="compare"),
    path(PIPELINE + "production/", views.promote, name="promote"),
    path(PIPELINE + "production/rollback/", views.rollback, name="rollback"),
]
