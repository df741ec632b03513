from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "cellar_server.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from cellar_server.registry import schema  # noqa: F401  (registers the OpenAPI auth extension)

        try:
            from cellar_server.core import blob_refs
        except ImportError:  # the data layer's garbage collector is not installed
            return
        from cellar_server.registry import selectors

        # Model versions are kept forever: their blobs and their source runs stay live.
        blob_refs.register("registry.model_versions", selectors.live_blob_hashes)
        blob_refs.register_keeper("registry.source_runs", selectors.kept_source_runs)
