from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "cellar_server.compute"
    label = "compute"
    verbose_name = "Compute pools"
