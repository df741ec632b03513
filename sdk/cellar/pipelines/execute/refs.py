"""What a step reads and writes: references to values in the content-addressed store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cellar.artifacts.base import ArtifactStore, ArtifactStoreError
from cellar.pipelines.serializers import deserialize, serialize, type_name


@dataclass(frozen=True)
class ArtifactRef:
    """A value in the content-addressed store: what a task records per name."""

    sha256: str
    serializer: str
    size: int | None = None
    type: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
    return deserialize(ref.serializer, store.get_blob(team, ref.sha256))


def store_value(value: Any, *, store: ArtifactStore, team: str) -> ArtifactRef:
    """Serialize `value` and store it content-addressed under the team's prefix.

    Raises SerializationError when the value cannot be serialized, and ArtifactStoreError when
    the store does not take the bytes (unwritable, full, unreachable), naming the store and the
    original error, so a step that cannot write its output says why.
    """
    serializer, data = serialize(value)
    try:
        digest = store.put_blob(team, data)
    except Exception as exc:
        raise ArtifactStoreError(f"could not write to the artifact store: {type(exc).__name__}: {exc}") from exc
    return ArtifactRef(digest, serializer, len(data), type_name(value))
