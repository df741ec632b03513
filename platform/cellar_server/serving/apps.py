from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "cellar_server.serving"
    label = "serving"
    verbose_name = "Serving: deployments and monitoring"

    def ready(self) -> None:
        from cellar_server.serving import schema  # noqa: F401  (registers the OpenAPI auth extension)
