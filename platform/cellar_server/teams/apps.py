from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "cellar_server.teams"
    label = "teams"

    def ready(self) -> None:
        from cellar_server.teams import schema  # noqa: F401  (registers the OpenAPI auth extension)
