from django.apps import AppConfig


class AbtestsConfig(AppConfig):
    name = "cellar_server.abtests"
    label = "abtests"
    verbose_name = "A/B tests"

    def ready(self) -> None:
        # Plug into serving's route manifest and the registry's alias moves, where those apps exist.
        from cellar_server.abtests import integration

        integration.register()
