"""The artifact store interface and the registry of backends."""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import BinaryIO
from urllib.parse import urlparse


class ArtifactStoreError(Exception):
    pass


def blob_key(team: str, sha256: str) -> str:
    """Where a blob lives: teams/<team>/data/<sha[:2]>/<sha> (ARCHITECTURE.md, "Artifacts")."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ArtifactStoreError(f"not a sha256 hex digest: {sha256!r}")
    if not team or "/" in team or team in {".", ".."}:
        raise ArtifactStoreError(f"not a team slug: {team!r}")
    return f"teams/{team}/data/{sha256[:2]}/{sha256}"


class ArtifactStore(ABC):
    """Bytes by key. Keys are relative paths; a backend maps them to its own namespace."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def put_file(self, key: str, path: str) -> None:
        """Store a local file's bytes under `key` (streams; never holds the file in memory)."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the bytes under `key`."""

    @abstractmethod
    def check(self) -> None:
        """Raise when the store cannot be reached or written (used by /readyz)."""

    def refresh(self, key: str) -> bool:
        """Whether `key` exists; a backend that can also marks it as just used, so a garbage
        collector sweeping now keeps it (docs/data.md, "Garbage collection"). A writer that
        re-uses a stored blob calls this instead of `exists`."""
        return self.exists(key)

    def put_blob(self, team: str, data: bytes) -> str:
        """Store content-addressed; writing the same bytes twice is free. Returns the sha256."""
        digest = hashlib.sha256(data).hexdigest()
        key = blob_key(team, digest)
        if not self.refresh(key):
            self.put_bytes(key, data)
        return digest

    def put_stream(self, team: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a stream content-addressed, hashing as it spools to disk. Returns (sha256, size)."""
        hasher, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix="cellar-upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    hasher.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
            digest = hasher.hexdigest()
            key = blob_key(team, digest)
            if not self.refresh(key):
                self.put_file(key, tmp)
            return digest, size
        finally:
            os.unlink(tmp)

    def open_blob(self, team: str, sha256: str) -> BinaryIO:
        return self.open(blob_key(team, sha256))

    def get_blob(self, team: str, sha256: str) -> bytes:
        data = self.get_bytes(blob_key(team, sha256))
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactStoreError(f"blob {sha256} is corrupt")
        return data


# scheme -> "module:Class", resolved lazily so boto3 is only imported for s3://.
BACKENDS = {
    "file": "cellar.artifacts.local:LocalArtifactStore",
    "s3": "cellar.artifacts.s3:S3ArtifactStore",
}


def store_from_url(url: str) -> ArtifactStore:
    parsed = urlparse(url)
    target = BACKENDS.get(parsed.scheme)
    if target is None:
        raise ArtifactStoreError(f"no artifact store for '{parsed.scheme}://' (known: {', '.join(BACKENDS)})")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name).from_url(url)
