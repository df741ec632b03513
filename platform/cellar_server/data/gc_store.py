"""What the garbage collector needs from an artifact store beyond the SDK's interface:
list a team's blobs with their last-used time, and delete one only if still unused.

"Last used" is the file's modification time (local) or LastModified (S3): writing a blob
sets it, and a writer that re-uses an existing blob refreshes it (ArtifactStore.refresh).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cellar.artifacts import ArtifactStore, blob_key
from cellar.artifacts.local import LocalArtifactStore
from cellar.artifacts.s3 import S3ArtifactStore

_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int
    used_at: float  # epoch seconds


def list_blobs(store: ArtifactStore, team: str) -> Iterator[Blob]:
    if isinstance(store, LocalArtifactStore):
        yield from _local_list(store, team)
    elif isinstance(store, S3ArtifactStore):
        yield from _s3_list(store, team)
    else:
        raise TypeError(f"the garbage collector does not know {type(store).__name__}")


def delete_if_unused_since(store: ArtifactStore, team: str, sha256: str, cutoff: float) -> int | None:
    """Delete the blob unless it was used at or after `cutoff`: the bytes freed, None if kept."""
    if isinstance(store, LocalArtifactStore):
        return _local_delete(store, team, sha256, cutoff)
    return _s3_delete(store, team, sha256, cutoff)


# --- local folder ----------------------------------------------------------------------------


def _local_list(store: LocalArtifactStore, team: str) -> Iterator[Blob]:
    root = store.root / "teams" / team / "data"
    if not root.is_dir():
        return
    for shard in os.scandir(root):
        if not shard.is_dir():
            continue
        for entry in os.scandir(shard.path):
            if _SHA.match(entry.name):
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                yield Blob(entry.name, stat.st_size, stat.st_mtime)


def _local_delete(store: LocalArtifactStore, team: str, sha256: str, cutoff: float) -> int | None:
    path = Path(store.root) / blob_key(team, sha256)
    # Move it aside first (atomic): a writer refreshing it from now on finds it gone and writes
    # it again. Then decide on the moved file's time, which a refresh before the move changed.
    tomb = path.with_name(f".gc-{os.getpid()}-{sha256}")
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return None
    stat = tomb.stat()
    if stat.st_mtime >= cutoff:
        # Used during the sweep: put it back (unless a writer already wrote it again).
        try:
            os.link(tomb, path)
        except FileExistsError:
            pass
        tomb.unlink()
        return None
    tomb.unlink()
    return stat.st_size


# --- S3 --------------------------------------------------------------------------------------


def _s3_list(store: S3ArtifactStore, team: str) -> Iterator[Blob]:
    prefix = store._key(f"teams/{team}/data/")
    paginator = store.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=store.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if _SHA.match(name):
                yield Blob(name, obj["Size"], obj["LastModified"].timestamp())


def _s3_delete(store: S3ArtifactStore, team: str, sha256: str, cutoff: float) -> int | None:
    from botocore.exceptions import ClientError

    key = store._key(blob_key(team, sha256))
    try:
        head = store.client.head_object(Bucket=store.bucket, Key=key)
    except ClientError:
        return None
    if head["LastModified"].timestamp() >= cutoff:
        return None
    # S3 has no atomic "delete if unmodified since"; the window between the check and the delete
    # is milliseconds, against a grace window of hours (docs/data.md).
    store.client.delete_object(Bucket=store.bucket, Key=key)
    return int(head["ContentLength"])
