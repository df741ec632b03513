"""Content-addressed artifact storage behind one interface (local folder or S3).

`store_from_url("file:///…")` or `store_from_url("s3://bucket/prefix")` picks
the backend from a small registry, like Metaflow's datastore plugins.
"""

from cellar.artifacts.base import ArtifactStore, ArtifactStoreError, blob_key, store_from_url

__all__ = ["ArtifactStore", "ArtifactStoreError", "blob_key", "store_from_url"]
