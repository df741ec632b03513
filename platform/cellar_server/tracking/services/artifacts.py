"""Artifact files by path in the team's tree; bytes content-addressed in the artifact store.

A path is a relative POSIX path such as `3/<run_id>/artifacts/model/MLmodel`
(MLflow's proxied-artifact layout). Uploading the same bytes twice stores them
once; uploading a path again replaces what the path points to.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings

from cellar.artifacts import ArtifactStore, store_from_url
from cellar_server.core.scoping import team_scope
from cellar_server.teams.models import Team
from cellar_server.tracking.errors import invalid, missing
from cellar_server.tracking.models import ArtifactFile
from cellar_server.tracking.services.experiments import now_ms
from cellar_server.tracking.validation import normalize_artifact_path

_STORES: dict[tuple[str, str], ArtifactStore] = {}


def artifact_store() -> ArtifactStore:
    """The configured store, built once per (URL, endpoint): an S3 client is costly to create."""
    key = (settings.ARTIFACT_STORE_URL, os.environ.get("AWS_ENDPOINT_URL", ""))
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = store_from_url(settings.ARTIFACT_STORE_URL)
    return store


@dataclass(frozen=True)
class FileEntry:
    path: str
    is_dir: bool
    file_size: int | None


def artifact_put(*, team: Team, path: str, chunks: Iterable[bytes]) -> ArtifactFile:
    path = normalize_artifact_path(path)
    if not path:
        raise invalid("An artifact upload needs a file path.")
    digest, size = artifact_store().put_stream(team.slug, chunks)
    # Written after the bytes are stored: a row never points at missing bytes.
    artifact, _ = ArtifactFile.all_teams.update_or_create(
        team=team, path=path, defaults={"sha256": digest, "size": size, "created_at": now_ms()}
    )
    return artifact


def artifact_open(*, team: Team, path: str) -> tuple[BinaryIO, ArtifactFile]:
    path = normalize_artifact_path(path)
    with team_scope(team.id):
        artifact = ArtifactFile.objects.filter(path=path).first()
    if artifact is None:
        raise missing(f"No artifact at '{path}'.")
    return artifact_store().open_blob(team.slug, artifact.sha256), artifact


def artifact_list(*, team: Team, directory: str) -> list[FileEntry]:
    """Immediate children of `directory`, paths relative to it (files first by name, then dirs)."""
    directory = normalize_artifact_path(directory)
    prefix = f"{directory}/" if directory else ""
    with team_scope(team.id):
        rows = ArtifactFile.objects.filter(path__startswith=prefix).values_list("path", "size")
    files: dict[str, int] = {}
    dirs: set[str] = set()
    for path, size in rows:
        rest = path[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            dirs.add(head)
        else:
            files[head] = size
    entries = [FileEntry(name, False, size) for name, size in files.items()]
    entries += [FileEntry(name, True, None) for name in dirs if name not in files]
    return sorted(entries, key=lambda e: e.path)


def artifact_delete(*, team: Team, path: str) -> int:
    """Delete a file or a whole directory; the bytes stay while other paths share them."""
    path = normalize_artifact_path(path)
    with team_scope(team.id):
        exact = ArtifactFile.objects.filter(path=path)
        deleted, _ = exact.delete()
        if not deleted and path:
            deleted, _ = ArtifactFile.objects.filter(path__startswith=f"{path}/").delete()
    if not deleted:
        raise missing(f"No artifact at '{path}'.")
    return deleted


def join(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p])
