from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "cellar_server.workspaces"
    label = "workspaces"

    def ready(self) -> None:
        from cellar_server.workspaces import schema  # noqa: F401  (registers the OpenAPI auth extension)
