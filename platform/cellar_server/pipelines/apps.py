from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "cellar_server.pipelines"
    label = "pipelines"

    def ready(self) -> None:
        from cellar_server.pipelines import checks  # noqa: F401  (registers the pools check)
