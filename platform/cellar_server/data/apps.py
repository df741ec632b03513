from django.apps import AppConfig


class DataConfig(AppConfig):
    name = "cellar_server.data"
    label = "data"
    verbose_name = "Data: secrets, connections, data sets"

    def ready(self) -> None:
        from cellar_server.data import refs, schema  # noqa: F401  (schema registers the OpenAPI auth extension)

        refs.register_all()
