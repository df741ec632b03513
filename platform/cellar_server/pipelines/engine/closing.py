"""How a run stops: the first failure, and closing the run once nothing is left in flight.

A failure with no retry left stops the run from creating new tasks: its queued (and
dispatched, not yet claimed) tasks are cancelled at once, running ones finish, and when none
is left the run closes `failed` with its first failure as `error`; the tasks that were never
created because of it are recorded `upstream_failed`. A cancel closes the run `cancelled` the
same way. The tracking run mirrors the outcome. Callers hold the run's row lock.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from cellar_server.pipelines.engine.rows import NewTask, insert_tasks
from cellar_server.pipelines.models import (
    RUN_CANCELLED,
    RUN_FAILED,
    RUN_SUCCEEDED,
    RUN_TERMINAL,
    TASK_CANCELLED,
    TASK_DISPATCHED,
    TASK_DONE_OK,
    TASK_IN_FLIGHT,
    TASK_QUEUED,
    TASK_UPSTREAM_FAILED,
    PipelineRun,
    Task,
    TaskAttempt,
)

OPEN = sorted({TASK_QUEUED} | TASK_IN_FLIGHT)
TRACKING_STATUS = {RUN_SUCCEEDED: "FINISHED", RUN_FAILED: "FAILED", RUN_CANCELLED: "KILLED"}


def error_summary(task: Task, error: dict[str, Any] | None) -> dict[str, Any]:
    """The run's `error`: where the first failure happened and what it said."""
    error = error if isinstance(error, dict) else {}
    return {
        "task": task.pk,
        "step": task.step,
        "index": task.index if task.index >= 0 else None,
        "kind": task.kind,
        "cell": error.get("cell"),
        "line": error.get("line"),
        "phase": error.get("phase"),
        "type": str(error.get("exc_type") or error.get("type") or "Error"),
        "message": str(error.get("message") or "the task failed without a message"),
        "traceback": str(error.get("traceback") or ""),
    }


def cancel_unstarted(*, run: PipelineRun) -> int:
    """Cancel the run's queued tasks and those dispatched but not yet claimed (their claim will be
    refused, so the agent drops them). Returns how many."""
    now = timezone.now()
    TaskAttempt.all_teams.filter(task__run_id=run.pk, task__state=TASK_DISPATCHED, state="dispatched").update(
        state="cancelled", ended_at=now
    )
    return Task.all_teams.filter(run_id=run.pk, state__in=[TASK_QUEUED, TASK_DISPATCHED]).update(
        state=TASK_CANCELLED, ended_at=now, lease_expires_at=None
    )


def run_record_failure(*, run: PipelineRun, task: Task, error: dict[str, Any] | None) -> None:
    """A task failed for good: count it, keep the run's first failure, stop starting work."""
    fields = ["tasks_failed"]
    run.tasks_failed += 1
    if run.error is None:
        run.error = error_summary(task, error)
        fields.append("error")
    run.save(update_fields=fields)
    cancel_unstarted(run=run)


def run_close_if_done(*, run: PipelineRun, graph) -> bool:
    """Close the run when none of its tasks is queued or in flight; True when it closed."""
    if run.state in RUN_TERMINAL or Task.all_teams.filter(run_id=run.pk, state__in=OPEN).exists():
        return False
    if run.cancel_requested:
        state = RUN_CANCELLED
    elif run.tasks_failed or run.error:
        state = RUN_FAILED
        _mark_never_created(run, graph)
    else:
        missing = _incomplete_steps(run, graph)
        state = RUN_SUCCEEDED if not missing else RUN_FAILED
        if missing:
            # Nothing runs and nothing can: a spec the engine cannot follow. Say so instead of hanging.
            run.error = {
                "task": None,
                "step": missing[0],
                "index": None,
                "kind": "step",
                "cell": None,
                "line": None,
                "phase": "engine",
                "type": "EngineError",
                "message": f"steps never became ready: {', '.join(missing)}; promote the notebook again",
                "traceback": "",
            }
    now = timezone.now()
    run.state = state
    run.ended_at = now
    run.started_at = run.started_at or now
    run.save(update_fields=["state", "ended_at", "started_at", "error", "tasks_total"])
    _tracking_close(run)
    if state == RUN_FAILED:  # a failed production run tells its team (pipelines/notifications.py), on commit
        from cellar_server.pipelines.notifications import run_failed_soon

        run_failed_soon(run)
    return True


def _counts(run: PipelineRun) -> dict[tuple[str, str], tuple[int, int]]:
    """(step, kind) -> (rows, rows done OK)."""
    rows = (
        Task.all_teams.filter(run_id=run.pk)
        .values("step", "kind")
        .annotate(total=Count("id"), ok=Count("id", filter=Q(state__in=sorted(TASK_DONE_OK))))
    )
    return {(r["step"], r["kind"]): (r["total"], r["ok"]) for r in rows}


def _incomplete_steps(run: PipelineRun, graph) -> list[str]:
    counts = _counts(run)
    missing = []
    for step in graph.spec.steps:
        fanout = step.branch_of
        if fanout is None:
            complete = counts.get((step.name, "step"), (0, 0))[1] == 1
        else:
            expanded = counts.get((fanout, "expand"), (0, 0))[1] == 1
            total, ok = counts.get((step.name, "step"), (0, 0))
            complete = expanded and total == ok == counts.get((fanout, "step"), (0, 0))[0]
        if not complete:
            missing.append(step.name)
    return missing


def _mark_never_created(run: PipelineRun, graph) -> None:
    """Record `upstream_failed` tasks for what the failure kept from ever being created."""
    counts = _counts(run)
    now = timezone.now()
    new: list[NewTask] = []

    def add(step, index: int, kind: str) -> None:
        new.append(
            NewTask(
                team_id=run.team_id,
                run_id=run.pk,
                step=step.name,
                index=index,
                kind=kind,
                pool=step.resources.pool,
                state=TASK_UPSTREAM_FAILED,
                created_at=now,
                ended_at=now,
            )
        )

    tasks = Task.all_teams.filter(run_id=run.pk)
    for step in graph.spec.steps:
        fanout = step.branch_of
        if fanout is None:
            if (step.name, "step") not in counts:
                add(step, -1, "step")
            continue
        if step.foreach is not None and (step.name, "expand") not in counts:
            add(step, -1, "expand")
        expand = tasks.filter(step=fanout, index=-1, kind="expand", state__in=sorted(TASK_DONE_OK)).first()
        if expand is None:
            continue  # never expanded: its `expand` task stands for the whole fan-out
        present = set(tasks.filter(step=step.name, kind="step").values_list("index", flat=True))
        for index in range(len(expand.items or [])):
            if index not in present:
                add(step, index, "step")
    insert_tasks(new)
    run.tasks_total += len(new)


def _tracking_close(run: PipelineRun) -> None:
    if not run.tracking_run:
        return
    from cellar_server.teams.models import Team
    from cellar_server.tracking.errors import TrackingError
    from cellar_server.tracking.services.experiments import now_ms
    from cellar_server.tracking.services.runs import run_get, run_update

    try:
        tracked = run_get(team=Team.objects.get(pk=run.team_id), run_id=run.tracking_run)
    except TrackingError:
        return  # the tracking run was deleted: the pipeline run still closes
    run_update(run=tracked, status=TRACKING_STATUS[run.state], end_time=now_ms())
