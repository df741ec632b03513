from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "cellar_server.teams"
    label = "teams"
