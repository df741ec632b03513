from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "cellar_server.serving"
    label = "serving"
    verbose_name = "Serving: deployments and monitoring"
