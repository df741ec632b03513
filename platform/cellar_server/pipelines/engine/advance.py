"""run_advance: create the tasks that became ready, apply the step cache, close the run when done.

A task is created when it is ready (there is no "pending"), with its inputs resolved to the
ArtifactRef dicts of the tasks that produced them:

* a step outside any fan-out: one task (index -1) once every upstream step is complete;
* a `foreach:` step F: first an `expand` task that evaluates the iterable on a worker; when it
  succeeds with N elements, one task per element of F (index i, item = element i), in bulk;
* a step B with `branch_of = F`: B[i] once its same-index predecessors are done (and any
  upstream outside the fan-out is complete);
* a step after the fan-out that reads a branch step (the join): once every branch task of that
  step is done, with each such input as a list of refs in element order.

"Complete" means every task of the step succeeded or was served from the cache. The caller
holds the run's row (results and runs lock it first), so two advances of one run never race;
on PostgreSQL each statement after the lock sees what the previous holder committed.

Incremental: given the tasks that just completed, only their successors are examined, with a
few indexed queries per step, so a 20,000-task fan-out costs O(batch) per report, not O(N).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from cellar.pipelines.execute import reads_iterable
from cellar.pipelines.runner.cache import environment_hash
from cellar.pipelines.spec import PipelineSpec, Step
from cellar_server.pipelines.engine import cache
from cellar_server.pipelines.engine.closing import OPEN, run_close_if_done, run_record_failure
from cellar_server.pipelines.engine.rows import NewTask, insert_tasks
from cellar_server.pipelines.models import (
    RUN_TERMINAL,
    TASK_CACHED,
    TASK_DONE_OK,
    TASK_FAILED,
    PipelineRun,
    PipelineVersion,
    Task,
)

EXPAND, STEP = "expand", "step"
ALL = None  # every index of the fan-out
LARGE = 500  # above this many indices, read the step's rows whole instead of `index IN (...)`
NOT_DONE = ["queued", "dispatched", "running", "failed", "cancelled", "upstream_failed"]
DONE_OK = sorted(TASK_DONE_OK)


# --- the version's graph, parsed once per process ------------------------------------------------------------


@dataclass(frozen=True)
class Graph:
    spec: PipelineSpec
    steps: dict[str, Step]
    order: dict[str, int]
    downstream: dict[str, tuple[str, ...]]
    members: dict[str, tuple[str, ...]]  # fan-out (foreach step) -> its steps, the foreach step first
    unread: dict[str, str]  # foreach step -> its iterable, when its code reads only the item
    environment: str
    hashed: dict[str, cache.HashedStep]  # step -> what its cache keys need, hashed once

    def fanout(self, name: str) -> str | None:
        return self.steps[name].branch_of


_GRAPHS: OrderedDict[str, Graph] = OrderedDict()
_GRAPHS_KEPT = 256


def graph_for(version_id: int) -> Graph:
    """The parsed spec of a version, kept per process by its content hash (a version's id)."""
    digest = PipelineVersion.all_teams.values_list("hash", flat=True).get(pk=version_id)
    graph = _GRAPHS.get(digest)
    if graph is not None:
        _GRAPHS.move_to_end(digest)
        return graph
    spec = PipelineSpec.from_dict(PipelineVersion.all_teams.values_list("spec", flat=True).get(pk=version_id))
    downstream: dict[str, list[str]] = {s.name: [] for s in spec.steps}
    members: dict[str, list[str]] = {}
    for step in spec.steps:
        for up in step.upstream:
            downstream[up].append(step.name)
        if step.branch_of:
            members.setdefault(step.branch_of, []).append(step.name)
    graph = Graph(
        spec=spec,
        steps={s.name: s for s in spec.steps},
        order={s.name: i for i, s in enumerate(spec.steps)},
        downstream={k: tuple(v) for k, v in downstream.items()},
        members={k: tuple(v) for k, v in members.items()},
        unread={s.name: s.foreach.iterable for s in spec.steps if s.foreach and not reads_iterable(s)},
        environment=environment_hash(spec.environment),
        hashed={s.name: cache.HashedStep(s) for s in spec.steps},
    )
    _GRAPHS[digest] = graph
    if len(_GRAPHS) > _GRAPHS_KEPT:
        _GRAPHS.popitem(last=False)
    return graph


# A fan-out's size never changes once its expansion succeeded: kept per expand task (its id
# and end time, so a database that reuses ids, like a test's rolled-back SQLite, is safe).
_SIZES: OrderedDict[tuple[int, str], int] = OrderedDict()
_SIZES_KEPT = 4096


# --- advancing ---------------------------------------------------------------------------------------------


def run_advance(*, run: PipelineRun, completed: list[Task] | None = None) -> PipelineRun:
    """Create every task that became ready, then close the run if nothing is left to do.

    `completed`: the tasks that just succeeded (or were cloned); only their successors are
    examined. None examines the whole run (creation, resume, the reconciler).
    Returns the run as locked and updated.
    """
    with transaction.atomic():
        run = PipelineRun.all_teams.select_for_update().get(pk=run.pk)
        if run.state in RUN_TERMINAL:
            return run
        graph = graph_for(run.version_id)
        if not stopping(run):
            advance = _Advance(run, graph)
            advance.go(completed)
            if completed is not None and not stopping(run) and not run_has_open_tasks(run):
                # About to close: look at the whole run once, so a run never closes `failed`
                # for a successor the incremental pass did not think of.
                advance.go(None)
        run_close_if_done(run=run, graph=graph)
    return run


def run_has_open_tasks(run: PipelineRun) -> bool:
    return Task.all_teams.filter(run_id=run.pk, state__in=OPEN).exists()


def stopping(run: PipelineRun) -> bool:
    """A cancelled run, or one with a task failed for good, creates no new task."""
    return bool(run.cancel_requested or run.tasks_failed or run.error)


class _Advance:
    def __init__(self, run: PipelineRun, graph: Graph):
        self.run = run
        self.graph = graph
        self.tasks = Task.all_teams.filter(run_id=run.pk)
        self.done: dict[str, dict[int, dict[str, Any]]] = {}  # step -> index -> outputs, DONE_OK rows seen
        self.complete_steps: set[str] = set()
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.sizes: dict[str, int] = {}

    # --- what exists --------------------------------------------------------------------------------------

    def size(self, fanout: str) -> int | None:
        """How many elements the fan-out has, or None while its expansion has not succeeded."""
        if fanout in self.sizes:
            return self.sizes[fanout]
        row = self.tasks.filter(step=fanout, index=-1, kind=EXPAND).values_list("pk", "state", "ended_at").first()
        if row is None or row[1] not in TASK_DONE_OK:
            return None
        key = (row[0], str(row[2]))
        if key not in _SIZES:
            _SIZES[key] = len(self.fanout_items(fanout))
        self.sizes[fanout] = _SIZES[key]
        if len(_SIZES) > _SIZES_KEPT:
            _SIZES.popitem(last=False)
        return self.sizes[fanout]

    def fanout_items(self, fanout: str) -> list[dict[str, Any]]:
        if fanout not in self.items:
            items = self.tasks.filter(step=fanout, index=-1, kind=EXPAND).values_list("items", flat=True).first()
            self.items[fanout] = list(items or [])
        return self.items[fanout]

    def _rows(self, step: str, among: set[int] | None, **filters: Any):
        rows = self.tasks.filter(step=step, kind=STEP, **filters)
        if among is not None and len(among) <= LARGE:
            rows = rows.filter(index__in=sorted(among))
        return rows

    def existing(self, step: str, among: set[int] | None, kind: str = STEP) -> set[int]:
        if kind == EXPAND:
            return {-1} if self.tasks.filter(step=step, index=-1, kind=EXPAND).exists() else set()
        found = set(self._rows(step, among).values_list("index", flat=True))
        return found if among is None else found & among

    def done_outputs(self, step: str, among: set[int] | None) -> dict[int, dict[str, Any]]:
        """index -> outputs of the step's tasks that are done OK (among these indices)."""
        known = self.done.setdefault(step, {})
        wanted = None if among is None else {i for i in among if i not in known}
        if wanted is None or wanted:
            for index, outputs in self._rows(step, wanted, state__in=DONE_OK).values_list("index", "outputs"):
                known[index] = outputs
        return known if among is None else {i: known[i] for i in among if i in known}

    def complete(self, step: str) -> bool:
        if step in self.complete_steps:
            return True
        fanout = self.graph.fanout(step)
        if fanout is None:
            ok = bool(self.done_outputs(step, {-1}))
        else:
            n = self.size(fanout)
            if n is None:
                ok = False
            elif n == 0:
                ok = True
            elif self.tasks.filter(step=step, kind=STEP, state__in=NOT_DONE).exists():
                ok = False  # cheap: only the run's unfinished rows are looked at
            else:
                ok = self._rows(step, None, state__in=DONE_OK).count() == n
        if ok:
            self.complete_steps.add(step)
        return ok

    # --- candidates ---------------------------------------------------------------------------------------

    def whole(self, name: str) -> tuple[str, str, frozenset[int] | None]:
        fanout = self.graph.fanout(name)
        if fanout is None:
            return ("one", name, frozenset({-1}))
        if fanout == name:
            return (EXPAND, name, frozenset({-1}))
        return ("branch", name, ALL)

    def after(self, task: Task | NewTask) -> list[tuple[str, str, frozenset[int] | None]]:
        """What may have become ready because `task` completed."""
        graph, name = self.graph, task.step
        if task.kind == EXPAND:
            found = [("branch", member, ALL) for member in graph.members.get(name, ())]
            for member in graph.members.get(name, ()):
                found += [self.whole(d) for d in graph.downstream[member] if graph.fanout(d) != name]
            return found
        if task.index >= 0:
            fanout = graph.fanout(name)
            return [
                ("branch", d, frozenset({task.index})) if graph.fanout(d) == fanout else self.whole(d)
                for d in graph.downstream[name]
            ]
        return [self.whole(d) for d in graph.downstream[name]]

    def everything(self) -> list[tuple[str, str, frozenset[int] | None]]:
        found = []
        for step in self.graph.spec.steps:
            found.append(self.whole(step.name))
            if step.foreach is not None:
                found.append(("branch", step.name, ALL))
        return found

    # --- the loop -----------------------------------------------------------------------------------------

    def go(self, completed: list[Task] | None) -> None:
        if completed is None:
            pending = self.everything()
        else:
            pending = [c for task in completed if task.state in TASK_DONE_OK for c in self.after(task)]
        while pending and not stopping(self.run):
            merged: dict[tuple[str, str], set[int] | None] = {}
            for what, name, indices in pending:
                key = (what, name)
                if key in merged and merged[key] is None:
                    continue
                merged[key] = None if indices is None else (merged.get(key) or set()) | set(indices)
            pending = []
            for (what, name), indices in sorted(merged.items(), key=lambda kv: self.graph.order[kv[0][1]]):
                created = self.create(what, name, indices)
                pending += [c for task in created if task.state == TASK_CACHED for c in self.after(task)]

    def ready(self, what: str, name: str, indices: set[int] | None) -> list[int]:
        graph, step = self.graph, self.graph.steps[name]
        if what == "one" or what == EXPAND:
            if self.existing(name, {-1}, kind=STEP if what == "one" else EXPAND):
                return []
            upstream = [u for u in step.upstream if graph.fanout(u) != name]
            return [-1] if all(self.complete(u) for u in upstream) else []
        fanout = graph.fanout(name)
        n = self.size(fanout)
        if n is None or n == 0:
            return []
        wanted = set(range(n)) if indices is None else {i for i in indices if 0 <= i < n}
        wanted -= self.existing(name, wanted if indices is not None else None)
        for up in step.upstream:
            if not wanted:
                break
            if graph.fanout(up) == fanout:
                wanted &= set(self.done_outputs(up, wanted if len(wanted) <= LARGE else None))
            elif not self.complete(up):
                wanted = set()
        return sorted(wanted)

    def create(self, what: str, name: str, indices: set[int] | None) -> list[NewTask]:
        ready = self.ready(what, name, indices)
        if not ready:
            return []
        step, run, now = self.graph.steps[name], self.run, timezone.now()
        kind = EXPAND if what == EXPAND else STEP
        use_cache = run.use_cache and kind == STEP and cache.cache_usable(step)
        new, broken = [], []
        for index in ready:
            try:
                inputs = self.inputs(step, index, kind)
            except LookupError as exc:
                broken.append((index, {"type": "EngineError", "message": str(exc), "phase": "inputs"}))
                continue
            item = self.fanout_items(name)[index] if index >= 0 and step.foreach is not None else None
            key = ""
            if kind == STEP:
                key = cache.task_cache_key(
                    self.graph.hashed[name],
                    inputs=inputs,
                    item=item,
                    parameters=run.parameters,
                    environment=self.graph.environment,
                    unread=self.graph.unread.get(name) if index >= 0 else None,
                )
            new.append(
                NewTask(
                    team_id=run.team_id,
                    run_id=run.pk,
                    step=name,
                    index=index,
                    kind=kind,
                    pool=step.resources.pool,
                    inputs=inputs,
                    item=item,
                    cache_key=key,
                    created_at=now,
                )
            )
        if use_cache:
            hits = cache.cache_lookup(team_id=run.team_id, keys=[t.cache_key for t in new])
            for task in new:
                outputs = hits.get(task.cache_key)
                if cache.cache_hit(step, outputs):
                    task.state, task.outputs, task.ended_at = TASK_CACHED, outputs, now
                    self.done.setdefault(name, {})[task.index] = outputs
        failed = [
            NewTask(
                team_id=run.team_id,
                run_id=run.pk,
                step=name,
                index=index,
                kind=kind,
                pool=step.resources.pool,
                state=TASK_FAILED,
                error=error,
                created_at=now,
                ended_at=now,
            )
            for index, error in broken
        ]
        insert_tasks(new + failed)
        run.tasks_total += len(new) + len(failed)
        run.tasks_done += sum(1 for t in new if t.state == TASK_CACHED)
        run.save(update_fields=["tasks_total", "tasks_done"])
        if failed:
            run_record_failure(
                run=run,
                task=Task.all_teams.get(run_id=run.pk, step=name, index=failed[0].index, kind=kind),
                error=failed[0].error,
            )
        return new

    def inputs(self, step: Step, index: int, kind: str) -> dict[str, Any]:
        """Each input of the task, from the task(s) of its producer (lists in element order for a join)."""
        graph, own = self.graph, self.graph.fanout(step.name) if index >= 0 else None
        inputs: dict[str, Any] = {}
        for name, producer in sorted(step.inputs.items()):
            if index >= 0 and graph.unread.get(step.name) == name:
                continue  # a branch sees its item; the whole iterable is not loaded again per element
            fanout = graph.fanout(producer)
            if own is not None and fanout == own:
                inputs[name] = self.output(producer, index, name, step.name)
            elif fanout is not None:
                n = self.size(fanout) or 0
                self.done_outputs(producer, None)
                inputs[name] = [self.output(producer, i, name, step.name) for i in range(n)]
            else:
                inputs[name] = self.output(producer, -1, name, step.name)
        return inputs

    def output(self, producer: str, index: int, name: str, reader: str) -> dict[str, Any]:
        outputs = self.done_outputs(producer, {index}).get(index) or {}
        if name not in outputs:
            raise LookupError(
                f"step '{reader}' reads '{name}' from step '{producer}', which did not record it as an output; "
                f"the compiled spec is inconsistent: promote the notebook again"
            )
        return outputs[name]
