"""The engine's wire contract between the control plane and the pool agents (JSON only).

A **batch** is one broker message on `pool.<name>`: one step of one run and one or more of
its tasks (micro-batching: many small tasks, one message, one task record each). The agent
answers through the engine API (`/api/v1/engine/…`), never through the broker:

    POST claims/      {"worker", "tasks": [Lease]}           -> {"claimed": [id], "refused": {id: reason}}
    POST heartbeats/  {"worker", "tasks": [Lease]}           -> {"alive": [id], "cancel": [id], "stale": [id]}
    POST results/     {"worker", "results": [TaskReport]}    -> {"accepted": [id], "refused": {id: reason}}

Every entry carries its task's **token** (opaque to the worker, signed by the server, scoped
to that task's team and run) and **lease**; the server refuses anything whose lease is not
the task's current one (fencing). Ids are task ids (integers) rendered as strings in maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

WIRE_VERSION = 1
STEP, EXPAND = "step", "expand"  # run the step / evaluate a foreach step's iterable
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"


@dataclass
class TaskItem:
    task: int
    attempt: int
    lease: str
    token: str
    kind: str = STEP
    index: int | None = None  # foreach element index for branch tasks
    # name -> ArtifactRef dict, or a list of them (a join's branch inputs, in element order)
    inputs: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] | None = None  # the foreach element's ArtifactRef dict


@dataclass
class Batch:
    team: str  # slug: the artifact prefix teams/<team>/…
    run: int  # PipelineRun id
    tracking_run: str  # the tracking run (MLflow run id) steps log to
    step: dict[str, Any]  # Step as plain data (spec.Step fields)
    tasks: list[TaskItem]
    parameters: dict[str, Any] = field(default_factory=dict)  # values of the parameters the step reads
    source: dict[str, Any] | None = None  # StepSource as plain data
    environment: str = ""  # environment hash: executors are kept per (team, environment)
    api_url: str = ""  # where to answer
    timeout: int | None = None  # seconds per task
    v: int = WIRE_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = _shallow(self)
        data["tasks"] = [_shallow(t) for t in self.tasks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        if data.get("v") != WIRE_VERSION:
            raise ValueError(f"unsupported batch version {data.get('v')!r} (this worker reads {WIRE_VERSION})")
        fields = dict(data)
        fields["tasks"] = [TaskItem(**t) for t in data["tasks"]]
        return cls(**fields)


@dataclass
class Lease:
    task: int
    lease: str
    token: str
    # Heartbeats: when the task's step began running on the agent (unix seconds); None while it
    # waits its turn in its batch. Step timeouts are measured from here, not from the claim.
    started_at: float | None = None
    # Heartbeats of a running task: the end of what it has written so far, {"stdout", "stderr"}
    # (at most LIVE_LOG_BYTES each), shown on its page until the full logs come with its result.
    logs: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = _shallow(self)
        if self.logs is None:
            del data["logs"]
        return data


LIVE_LOG_BYTES = 16 * 1024


@dataclass
class TaskReport:
    task: int
    lease: str
    token: str
    state: str  # succeeded | failed | cancelled
    outputs: dict[str, Any] = field(default_factory=dict)  # name -> ArtifactRef dict (kind "step")
    items: list[dict[str, Any]] | None = None  # foreach elements as ArtifactRef dicts (kind "expand")
    error: dict[str, Any] | None = None  # StepFailed.to_dict() or {"type", "message"} for infrastructure errors
    logs: dict[str, Any] = field(default_factory=dict)  # "stdout"/"stderr" -> ArtifactRef dict
    started_at: float | None = None  # unix seconds
    ended_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _shallow(self)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _shallow(obj: Any) -> dict[str, Any]:
    """The dataclass's fields as a dict, values as they are (they are JSON data already).
    `dataclasses.asdict` deep-copies every nested dict and list: an expansion's 20,000 element
    references, and a tenth of a pool agent's time per task."""
    names = _FIELDS.get(type(obj))
    if names is None:
        names = _FIELDS[type(obj)] = tuple(f.name for f in fields(obj))
    return {name: getattr(obj, name) for name in names}
