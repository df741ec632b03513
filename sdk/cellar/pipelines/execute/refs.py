"""What a step reads and writes: references to values in the content-addressed store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cellar.artifacts.base import ArtifactStore
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
    serializer, data = serialize(value)
    return ArtifactRef(store.put_blob(team, data), serializer, len(data), type_name(value))
