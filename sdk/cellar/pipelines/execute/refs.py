"""What a step reads and writes: references to values in the content-addressed store."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from cellar.artifacts.base import ArtifactStore, ArtifactStoreError, blob_key
from cellar.pipelines.serializers import deserialize, serialize, type_name

# A value whose JSON text is at most this many bytes travels inside its reference instead of as a
# blob of its own: a foreach over 20,000 small elements would otherwise create 20,000 files (about
# 1 ms of kernel time each) for values smaller than the reference that points at them, and read
# them back one by one. Ray keeps small objects inline for the same reason. Only JSON text is
# inlined, so the control plane, which stores references, still never holds a pickle.
INLINE_MAX_BYTES = 256


@dataclass(frozen=True)
class ArtifactRef:
    """A value in the content-addressed store: what a task records per name.

    `inline` holds the value's JSON text when it is small (see INLINE_MAX_BYTES); the sha256 is
    still the digest of those bytes, so cache keys and lineage do not depend on where it lives.
    """

    sha256: str
    serializer: str
    size: int | None = None
    type: str = ""
    inline: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.inline is None:
            del data["inline"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(**data)


# The same record seen from either side of a step.
InputRef = ArtifactRef
OutputRef = ArtifactRef


@dataclass
class StepResult:
    outputs: dict[str, ArtifactRef]
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0


def load_artifact(ref: ArtifactRef, *, store: ArtifactStore, team: str) -> Any:
    if ref.inline is not None:
        return deserialize(ref.serializer, ref.inline.encode("utf-8"))
    return deserialize(ref.serializer, store.get_blob(team, ref.sha256))


def is_stored(ref: ArtifactRef, *, store: ArtifactStore, team: str) -> bool:
    """Whether the value can be read back: inline in the reference, or its blob in the store."""
    return ref.inline is not None or store.exists(blob_key(team, ref.sha256))


def store_value(value: Any, *, store: ArtifactStore, team: str, inline: bool = True) -> ArtifactRef:
    """Serialize `value` and store it content-addressed under the team's prefix.

    Raises SerializationError when the value cannot be serialized, and ArtifactStoreError when
    the store does not take the bytes (unwritable, full, unreachable), naming the store and the
    original error, so a step that cannot write its output says why.
    """
    serializer, data = serialize(value)
    if inline and serializer == "json" and len(data) <= INLINE_MAX_BYTES:
        digest = hashlib.sha256(data).hexdigest()
        return ArtifactRef(digest, serializer, len(data), type_name(value), data.decode("utf-8"))
    try:
        digest = store.put_blob(team, data)
    except Exception as exc:
        raise ArtifactStoreError(f"could not write to the artifact store: {type(exc).__name__}: {exc}") from exc
    return ArtifactRef(digest, serializer, len(data), type_name(value))
