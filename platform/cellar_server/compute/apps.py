from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "cellar_server.compute"
    label = "compute"
    verbose_name = "Compute pools"

    def ready(self) -> None:
        from cellar_server.compute import schema  # noqa: F401  (registers the OpenAPI auth extension)
