"""Reads for pipelines: lists for the API and pages, a version by number or id prefix, alias history.

Callers are inside `team_scope` (TeamScopedViewSet and `team_page` enter it); the
fail-closed managers refuse otherwise. List queries leave the specs (the large JSON) out.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Count, Max, Q, QuerySet

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.models import (
    TASK_CACHED,
    Pipeline,
    PipelineRun,
    PipelineVersion,
    ProductionMove,
    StepCacheEntry,
    Task,
    TaskAttempt,
)

MIN_PREFIX = 8
_NUMBER = re.compile(r"^v?(\d{1,7})$", re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-f]{8,64}$")
# What a version row needs for tables and headers: everything but the spec.
LIST_FIELDS = ("id", "team", "pipeline", "hash", "number", "step_count", "notebook", "created_by", "created_at")


def pipeline_list() -> QuerySet[Pipeline]:
    """Every pipeline of the scoped team, newest activity first, with version counts."""
    return (
        Pipeline.objects.select_related("production", "created_by")
        .defer("production__spec", "production__warnings")
        .annotate(version_count=Count("versions"), latest_number=Max("versions__number"))
        .annotate(latest_at=Max("versions__created_at"))
        .order_by("-latest_at", "name")
    )


def pipeline_for_name(*, name: str) -> Pipeline | None:
    return (
        Pipeline.objects.select_related("production", "created_by")
        .defer("production__spec", "production__warnings")
        .filter(name=name)
        .first()
    )


def version_list(*, pipeline: Pipeline) -> QuerySet[PipelineVersion]:
    return (
        PipelineVersion.objects.filter(pipeline=pipeline)
        .select_related("created_by")
        .only(*LIST_FIELDS, "created_by__username")
        .order_by("-number")
    )


def version_for_ref(*, pipeline: Pipeline, ref: str, full: bool = True) -> PipelineVersion | None:
    """A version by its number (`3`, `v3`) or its id, whole or a unique prefix of 8+ characters.

    None when nothing matches (404); ServiceError for a malformed or ambiguous reference.
    """
    ref = (ref or "").strip().lower()
    queryset = PipelineVersion.objects.filter(pipeline=pipeline).select_related("created_by")
    if not full:
        queryset = queryset.only(*LIST_FIELDS, "created_by__username")
    number = _NUMBER.match(ref)
    if number and len(ref) < MIN_PREFIX:
        return queryset.filter(number=int(number.group(1))).first()
    if not _HEX.match(ref):
        raise ServiceError(
            "invalid_version_ref",
            f"'{ref[:80]}' does not name a version: use its number (3 or v3) or at least the first "
            f"{MIN_PREFIX} characters of its id.",
        )
    if len(ref) == 64:
        return queryset.filter(hash=ref).first()
    matches = list(queryset.filter(hash__startswith=ref)[:2])
    if len(matches) > 1:
        raise ServiceError(
            "ambiguous_version_ref", f"More than one version id starts with '{ref}'; give more characters."
        )
    return matches[0] if matches else None


def production_history(*, pipeline: Pipeline) -> QuerySet[ProductionMove]:
    """The alias's moves, newest first, with both versions' numbers and hashes."""
    return (
        ProductionMove.objects.filter(pipeline=pipeline)
        .select_related("from_version", "to_version", "actor")
        .only(
            "id",
            "kind",
            "created_at",
            "actor_name",
            "actor",
            "actor__username",
            "from_version",
            "to_version",
            "from_version__number",
            "from_version__hash",
            "to_version__number",
            "to_version__hash",
        )
        .order_by("-created_at", "-id")
    )


def version_numbers(*, pipeline: Pipeline) -> list[tuple[int, int, str]]:
    """(pk, number, short id) of every version, newest first: the compare form's choices."""
    rows = PipelineVersion.objects.filter(pipeline=pipeline).order_by("-number").values_list("pk", "number", "hash")
    return [(pk, number, digest[:12]) for pk, number, digest in rows]


# --- runs and tasks (the run pages and the runs API) ----------------------------------------------------------
# A 20,000-task run is read through aggregated counts and pages of narrow rows: no page loads all
# its tasks, and no task list loads the inputs JSON (a join's inputs hold one ref per element).

RUN_LIST_FIELDS = (
    "id",
    "team",
    "pipeline",
    "version",
    "number",
    "state",
    "trigger",
    "use_cache",
    "cancel_requested",
    "resumed_from",
    "tracking_run",
    "tasks_total",
    "tasks_done",
    "tasks_failed",
    "error",
    "parameters",
    "created_by",
    "created_at",
    "started_at",
    "ended_at",
    "version__id",
    "version__number",
    "version__hash",
    "created_by__username",
    "resumed_from__number",
)
TASK_ROW_FIELDS = (
    "id",
    "run",
    "step",
    "index",
    "kind",
    "pool",
    "state",
    "attempt",
    "worker",
    "cloned_from",
    "created_at",
    "started_at",
    "ended_at",
)
# How a step is drawn from its tasks' states, most telling first.
STEP_STATE_ORDER = ("failed", "running", "dispatched", "queued", "cancelled", "upstream_failed")


def run_list(*, pipeline: Pipeline) -> QuerySet[PipelineRun]:
    return (
        PipelineRun.objects.filter(pipeline=pipeline)
        .select_related("version", "created_by", "resumed_from")
        .only(*RUN_LIST_FIELDS)
        .order_by("-number")
    )


def reused_tracking_runs(*, tracking_runs: list[str]) -> dict[str, list[str]]:
    """For pipeline runs (by their tracking runs): the tracking runs of the earlier pipeline runs
    whose step results they took from the cache. A cached step did not run, so what it read (data
    sets, for lineage) was recorded on the run that computed it. Two queries, in the caller's team."""
    cached = (
        Task.objects.filter(run__tracking_run__in=tracking_runs, state=TASK_CACHED)
        .exclude(cache_key="")
        .values_list("run__tracking_run", "cache_key")
    )
    keys_by_run: dict[str, set[str]] = {}
    for tracking_run, key in cached:
        keys_by_run.setdefault(tracking_run, set()).add(key)
    wanted = set().union(*keys_by_run.values()) if keys_by_run else set()
    sources = dict(
        StepCacheEntry.objects.filter(key__in=wanted, task__isnull=False).values_list("key", "task__run__tracking_run")
    )
    return {
        run: sorted({sources[k] for k in keys if sources.get(k) and sources[k] != run})
        for run, keys in keys_by_run.items()
    }


def run_for_number(*, pipeline: Pipeline, number: int) -> PipelineRun | None:
    return run_list(pipeline=pipeline).filter(number=number).first()


def run_steps(*, run: PipelineRun, spec_steps: list[Any]) -> list[dict[str, Any]]:
    """Per step, in the version's order: how many of its tasks are in each state (one query),
    the expansion's state for a foreach step, and the state the step is drawn with."""
    counts: dict[str, dict[str, int]] = {}
    expand: dict[str, str] = {}
    rows = Task.objects.filter(run=run).order_by().values("step", "kind", "state").annotate(n=Count("id"))
    for row in rows:
        if row["kind"] == "expand":
            expand[row["step"]] = row["state"]
        else:
            counts.setdefault(row["step"], {})[row["state"]] = row["n"]
    out = []
    for step in spec_steps:
        name = step["name"] if isinstance(step, dict) else step.name
        foreach = step.get("foreach") if isinstance(step, dict) else step.foreach
        tasks = counts.get(name, {})
        out.append(
            {
                "name": name,
                "expand": expand.get(name) if foreach else None,
                "tasks": tasks,
                "state": step_state(tasks, expand.get(name) if foreach else None),
            }
        )
    return out


def step_state(tasks: dict[str, int], expand: str | None = None) -> str:
    """One state for a step from its tasks' counts: any failure shows, then work in flight, then
    what is waiting; all cached is `cached`; all done is `succeeded`; no task yet is `pending`."""
    if expand in ("failed", "running", "dispatched", "queued", "cancelled", "upstream_failed") and not tasks:
        return "running" if expand == "dispatched" else expand
    for state in STEP_STATE_ORDER:
        if tasks.get(state):
            return "running" if state == "dispatched" else state
    if not tasks:
        return "pending"
    if set(tasks) == {"cached"}:
        return "cached"
    return "succeeded"


def foreach_progress(*, spec: dict[str, Any], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per step inside a fan-out: done/total and failed, from the counts run_steps read. The
    foreach step's tasks are all created when it expands, so their count is the fan-out's size."""
    by_name = {s["name"]: s for s in steps}
    specs = {s["name"]: s for s in spec.get("steps", [])}
    out = []
    for step in spec.get("steps", []):
        fanout = step.get("branch_of")
        if not fanout:
            continue
        foreach = specs.get(fanout, {}).get("foreach") or {}
        total = sum(by_name.get(fanout, {}).get("tasks", {}).values())
        tasks = by_name.get(step["name"], {}).get("tasks", {})
        done = tasks.get("succeeded", 0) + tasks.get("cached", 0)
        failed = tasks.get("failed", 0)
        out.append(
            {
                "step": step["name"],
                "fanout": fanout,
                "over": f"{foreach.get('item', 'item')} in {foreach.get('iterable', fanout)}",
                "total": total,
                "done": done,
                "failed": failed,
                "running": tasks.get("running", 0) + tasks.get("dispatched", 0),
                "percent": round(100 * done / total) if total else 0,
                "failed_percent": round(100 * failed / total) if total else 0,
            }
        )
    return out


def task_rows(*, run: PipelineRun, state: str | None = None, step: str | None = None) -> QuerySet[Task]:
    """The run's tasks as narrow rows (no inputs, outputs or items), in creation order."""
    tasks = Task.objects.filter(run=run).only(*TASK_ROW_FIELDS).order_by("id")
    if state:
        tasks = tasks.filter(state=state)
    if step:
        tasks = tasks.filter(step=step)
    return tasks


def task_for_id(*, run: PipelineRun, task_id: int) -> Task | None:
    return Task.objects.filter(run=run, pk=task_id).first()


def task_for_step(*, run: PipelineRun, step: str, index: int | None) -> Task | None:
    return Task.objects.filter(run=run, step=step, kind="step", index=-1 if index is None else index).first()


def task_attempts(*, task: Task) -> list[TaskAttempt]:
    return list(TaskAttempt.objects.filter(task=task).order_by("number"))


def _refs(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [r for r in value if isinstance(r, dict)]
    return [value] if isinstance(value, dict) else []


def task_refs(task: Task) -> dict[str, dict[str, Any]]:
    """sha256 -> reference of every value the task references: inputs, its element, outputs and
    logs (what a reader of the task may read). A small value's reference holds it `inline`."""
    found = {}
    for value in [*task.inputs.values(), task.item, *task.outputs.values(), *task.logs.values()]:
        found.update((r["sha256"], r) for r in _refs(value) if r.get("sha256"))
    return found


def task_lineage(*, run: PipelineRun, task: Task, spec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The task's inputs (with the task that produced each) and outputs (with the tasks that read
    them), from the version's graph: which step produced a name and at which index. One query
    resolves the neighbouring tasks' ids; a join's inputs link to the producing step's task list."""
    steps = {s["name"]: s for s in spec.get("steps", [])}
    me = steps.get(task.step, {})
    own = me.get("branch_of") if task.index >= 0 else None
    wanted: set[tuple[str, int]] = set()

    def where(step_name: str) -> tuple[int | None, bool]:
        """(index of the neighbour task, whether it is the whole fan-out) for a related step."""
        fanout = steps.get(step_name, {}).get("branch_of")
        if own is not None and fanout == own:
            return task.index, False
        if fanout is not None:
            return None, True
        return -1, False

    inputs = []
    for name, value in sorted(task.inputs.items()):
        producer = (me.get("inputs") or {}).get(name, "")
        index, fan = where(producer) if producer else (None, False)
        if producer and not fan:
            wanted.add((producer, index))
        refs = _refs(value)
        inputs.append(
            {
                "name": name,
                "refs": refs,
                "count": len(refs),
                "size": sum(r.get("size") or 0 for r in refs),
                "type": refs[0].get("type", "") if len(refs) == 1 else f"list of {len(refs)}",
                "step": producer,
                "index": index,
                "all": fan,
            }
        )
    if task.item:
        fanout = me.get("branch_of") or task.step
        inputs.append(
            {
                "name": (me.get("foreach") or {}).get("item", "item"),
                "refs": [task.item],
                "count": 1,
                "size": task.item.get("size") or 0,
                "type": task.item.get("type", ""),
                "step": fanout,
                "index": None,
                "all": False,
                "element": task.index,
            }
        )
    outputs = []
    for name, ref in sorted(task.outputs.items()):
        readers = []
        for other in spec.get("steps", []):
            if (other.get("inputs") or {}).get(name) == task.step:
                index, fan = where(other["name"])
                if other.get("branch_of") and own is None and other.get("branch_of") != own:
                    index, fan = None, True  # read by every element of a fan-out
                if not fan:
                    wanted.add((other["name"], index))
                readers.append({"step": other["name"], "index": index, "all": fan})
        outputs.append(
            {"name": name, "ref": ref, "size": ref.get("size") or 0, "type": ref.get("type", ""), "readers": readers}
        )
    ids: dict[tuple[str, int], int] = {}
    if wanted:
        query = Q()
        for step_name, index in wanted:
            query |= Q(step=step_name, index=index, kind="step")
        ids = {(s, i): pk for pk, s, i in Task.objects.filter(query, run=run).values_list("pk", "step", "index")}
    for entry in inputs:
        entry["task"] = ids.get((entry["step"], entry["index"])) if not entry["all"] else None
    for entry in outputs:
        for reader in entry["readers"]:
            reader["task"] = ids.get((reader["step"], reader["index"])) if not reader["all"] else None
    return {"inputs": inputs, "outputs": outputs}


def run_metrics(*, run: PipelineRun, team) -> list[tuple[str, float, int]]:
    """The latest value of each metric the run logged (key, value, step), through tracking's reads."""
    if not run.tracking_run:
        return []
    from cellar_server.tracking.errors import TrackingError
    from cellar_server.tracking.selectors import run_data_for
    from cellar_server.tracking.services.runs import run_get

    try:
        tracked = run_get(team=team, run_id=run.tracking_run)
    except TrackingError:
        return []
    return [(key, value, step) for key, value, _nan, _ts, step in run_data_for([tracked.pk])[tracked.pk].metrics]
