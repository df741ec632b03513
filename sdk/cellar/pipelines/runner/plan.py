"""The task graph of one run: which tasks exist, which are ready, what each one reads.

A task is one step x foreach index. Steps outside a fan-out have one task (index None).
A `foreach:` step first has an *expansion* task (kind "foreach", index None) that evaluates
the iterable; once it has, every step of that fan-out (`branch_of`) gets one task per
element, chained per index; a step outside the fan-out that reads a branch step (the
`join`) waits for all of them and gets lists in element order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cellar.pipelines.execute import ArtifactRef, reads_iterable
from cellar.pipelines.spec import PipelineSpec, Step

QUEUED, RUNNING, SUCCEEDED, FAILED, CACHED, UPSTREAM_FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cached",
    "upstream_failed",
    "cancelled",
)
DONE_OK = frozenset({SUCCEEDED, CACHED})
BROKEN = frozenset({FAILED, UPSTREAM_FAILED, CANCELLED})
FINAL = DONE_OK | BROKEN

TaskKey = tuple[str, int | None]


@dataclass
class Task:
    step: str
    index: int | None = None
    kind: str = "step"  # "step" or "foreach" (the expansion of a fan-out)
    state: str = QUEUED
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    cache_key: str | None = None
    duration: float | None = None
    items: int | None = None  # foreach: how many elements
    attempts: int = 0

    @property
    def key(self) -> TaskKey:
        return (self.step, self.index)

    @property
    def label(self) -> str:
        if self.kind == "foreach":
            return f"{self.step} (foreach)"
        return self.step if self.index is None else f"{self.step}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "step": self.step,
            "index": self.index,
            "kind": self.kind,
            "state": self.state,
            "outputs": {name: ref.to_dict() for name, ref in sorted(self.outputs.items())},
            "error": self.error,
            "cache_key": self.cache_key,
            "duration": self.duration,
            "attempts": self.attempts,
        }
        if self.kind == "foreach":
            data["items"] = self.items
        return data


class Plan:
    def __init__(self, spec: PipelineSpec):
        self.spec = spec
        self.steps = {step.name: step for step in spec.steps}
        self.tasks: dict[TaskKey, Task] = {}
        self.items: dict[str, list[ArtifactRef]] = {}  # foreach step -> its elements
        # foreach step -> its iterable's name, when the step's code only reads the item.
        self.unread_iterables = {s.name: s.foreach.iterable for s in spec.steps if s.foreach and not reads_iterable(s)}
        for step in spec.steps:
            if step.foreach is not None:
                self.tasks[(step.name, None)] = Task(step.name, None, kind="foreach")
            elif step.branch_of is None:
                self.tasks[(step.name, None)] = Task(step.name)

    # --- structure ----------------------------------------------------------------------

    def fanout_of(self, step: str) -> str | None:
        return self.steps[step].branch_of

    def count(self, fanout: str) -> int:
        return len(self.items.get(fanout, ()))

    def expand(self, fanout: str, items: list[ArtifactRef]) -> None:
        """The fan-out's iterable is known: one task per element for each of its steps."""
        self.items[fanout] = items
        for step in self.spec.steps:
            if step.branch_of == fanout:
                for index in range(len(items)):
                    self.tasks[(step.name, index)] = Task(step.name, index)

    def dependencies(self, task: Task) -> list[TaskKey]:
        step = self.steps[task.step]
        if task.kind == "foreach":
            upstream = [u for u in step.upstream if self.fanout_of(u) != task.step]
            return [key for up in upstream for key in self._all_of(up)]
        own = step.branch_of if task.index is not None else None
        keys: list[TaskKey] = []
        for up in step.upstream:
            if own is not None and self.fanout_of(up) == own:
                keys.append((up, task.index))
            else:
                keys.extend(self._all_of(up))
        return keys

    def _all_of(self, step: str) -> list[TaskKey]:
        """Every task of `step` seen from outside its fan-out (the expansion first)."""
        fanout = self.fanout_of(step)
        if fanout is None:
            return [(step, None)]
        return [(fanout, None)] + [(step, i) for i in range(self.count(fanout))]

    # --- readiness ----------------------------------------------------------------------

    def ready(self) -> list[Task]:
        """Queued tasks whose dependencies all succeeded (or were cached), in spec order."""
        order = {step.name: i for i, step in enumerate(self.spec.steps)}
        found = []
        for task in self.tasks.values():
            if task.state == QUEUED and all(self.tasks[k].state in DONE_OK for k in self.dependencies(task)):
                found.append(task)
        return sorted(found, key=lambda t: (order[t.step], t.kind != "foreach", t.index or 0))

    def propagate_failures(self) -> list[Task]:
        """Mark queued tasks below a failed one `upstream_failed`; returns those marked."""
        marked = []
        changed = True
        while changed:
            changed = False
            for task in self.tasks.values():
                if task.state != QUEUED:
                    continue
                if any(self.tasks[k].state in BROKEN for k in self.dependencies(task) if k in self.tasks):
                    task.state = UPSTREAM_FAILED
                    marked.append(task)
                    changed = True
        return marked

    def cancel_queued(self) -> None:
        for task in self.tasks.values():
            if task.state == QUEUED:
                task.state = CANCELLED

    # --- data ---------------------------------------------------------------------------

    def inputs_for(self, task: Task) -> dict[str, ArtifactRef | list[ArtifactRef]]:
        """Each input of the task's step, from the task(s) of its producer."""
        step = self.steps[task.step]
        own = step.branch_of if task.index is not None else None
        inputs: dict[str, ArtifactRef | list[ArtifactRef]] = {}
        for name, producer in sorted(step.inputs.items()):
            if task.index is not None and self.unread_iterables.get(step.name) == name:
                continue  # a branch sees its item; the whole iterable is not loaded again per element
            if own is not None and self.fanout_of(producer) == own:
                inputs[name] = self._output(producer, task.index, name, task)
            elif self.fanout_of(producer) is not None:
                fanout = self.fanout_of(producer)
                inputs[name] = [self._output(producer, i, name, task) for i in range(self.count(fanout))]
            else:
                inputs[name] = self._output(producer, None, name, task)
        return inputs

    def item_for(self, task: Task) -> ArtifactRef | None:
        step = self.steps[task.step]
        if step.foreach is None or task.index is None:
            return None
        return self.items[step.name][task.index]

    def _output(self, producer: str, index: int | None, name: str, reader: Task) -> ArtifactRef:
        task = self.tasks.get((producer, index))
        if task is None or name not in task.outputs:
            raise LookupError(
                f"step '{reader.step}' reads '{name}' from step '{producer}', which did not record it as an output; "
                f"the compiled spec is inconsistent: recompile the notebook"
            )
        return task.outputs[name]

    # --- summary ------------------------------------------------------------------------

    def step_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.kind == "step"]

    def step_of(self, task: Task) -> Step:
        return self.steps[task.step]
