from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "cellar_server.core"
    label = "cellar_core"

    def ready(self) -> None:
        from cellar_server.core import checks  # noqa: F401  (registers the system checks)
