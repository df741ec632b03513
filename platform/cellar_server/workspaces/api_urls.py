"""/api/v1/ routes of workspaces."""

from django.urls import path

from cellar_server.workspaces import apis

urlpatterns = [
    path("workspaces/kernel-tokens/", apis.KernelTokenApi.as_view(), name="workspace-kernel-tokens"),
    path(
        "teams/<slug:team_slug>/workspaces/promote-preview/",
        apis.PromotePreviewApi.as_view({"post": "create"}),
        name="workspace-promote-preview",
    ),
    path(
        "teams/<slug:team_slug>/workspaces/promote/",
        apis.PromoteApi.as_view({"post": "create"}),
        name="workspace-promote",
    ),
]
