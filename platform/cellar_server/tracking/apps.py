from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "cellar_server.tracking"
    label = "tracking"
