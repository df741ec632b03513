"""Page routes: the user's workspace (their notebook server on the hub)."""

from django.urls import path

from cellar_server.workspaces import views

app_name = "workspaces"

TEAM = "t/<slug:team_slug>/"

urlpatterns = [
    path(TEAM + "workspace/", views.workspace, name="home"),
    path(TEAM + "workspace/state/", views.workspace_state, name="state"),
    path(TEAM + "workspace/start/", views.workspace_start, name="start"),
    path(TEAM + "workspace/stop/", views.workspace_stop, name="stop"),
    path(TEAM + "workspace/open/", views.workspace_open, name="open"),
]
