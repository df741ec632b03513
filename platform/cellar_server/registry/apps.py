from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "cellar_server.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from cellar_server.core import blob_refs
        from cellar_server.registry import selectors

        # Model versions are kept forever: their blobs and their source runs stay live.
        blob_refs.register("registry.model_versions", selectors.live_blob_hashes)
        blob_refs.register_keeper("registry.source_runs", selectors.kept_source_runs)
