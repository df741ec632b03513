from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "cellar_server.core"
    label = "cellar_core"
