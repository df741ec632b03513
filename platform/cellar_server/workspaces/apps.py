from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "cellar_server.workspaces"
    label = "workspaces"
