"""Retry a failed task inside its own run (a "repair", as Databricks calls it), and the audit
entries of run operations.

`task_retry` puts a task that failed for good back in the queue of the same run, for one more
attempt. When no other task of the run is failed, the run reopens completely: it is `running`
again, the tasks the failure cancelled are queued again (their inputs are still valid: they
were resolved from tasks that finished), and the `upstream_failed` placeholders recorded when
the run closed are removed so that the normal advance creates those tasks with their real
inputs as their upstream completes. With other failures left, only the chosen task runs and the
run closes `failed` again when it ends (resume reruns every failure at once).

A cancelled run is not retried (cancelling was a person's decision; resume it). Only the
engine's own functions move state: `run_advance` decides what becomes ready, the dispatcher
sends the requeued task.
"""

from __future__ import annotations

from django.db import transaction

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.engine.advance import run_advance
from cellar_server.pipelines.engine.closing import error_summary
from cellar_server.pipelines.engine.dispatch import dispatch_soon
from cellar_server.pipelines.models import (
    RUN_FAILED,
    RUN_RUNNING,
    TASK_CANCELLED,
    TASK_FAILED,
    TASK_QUEUED,
    TASK_UPSTREAM_FAILED,
    PipelineRun,
    Task,
)
from cellar_server.teams.actors import Actor
from cellar_server.teams.services import audit_record


def run_audit(*, run: PipelineRun, actor: Actor, verb: str, details: dict | None = None) -> None:
    """An audit entry for a run operation (`pipeline_run.create`, `.cancel`, `.resume`, `.retry`)."""
    from cellar_server.teams.models import Team

    pipeline = PipelineRun.all_teams.filter(pk=run.pk).values_list("pipeline__name", flat=True).first()
    team = Team.objects.get(pk=run.team_id)
    audit_record(
        team=team,
        actor=actor,
        verb=f"pipeline_run.{verb}",
        target_type="pipeline_run",
        target_id=run.pk,
        target_repr=f"{pipeline or run.pipeline_id} #{run.number}",
        details=details or {},
    )


@transaction.atomic
def task_retry(*, run: PipelineRun, task_id: int, actor: Actor) -> PipelineRun:
    """Requeue a failed task of `run` for one more attempt; returns the run (reopened when no
    other failure is left). ServiceError: 404 for an unknown task, 409 when not retryable."""
    run = PipelineRun.all_teams.select_for_update().select_related("pipeline").get(pk=run.pk)
    task = Task.all_teams.select_for_update().filter(run_id=run.pk, pk=task_id).first()
    if task is None:
        raise ServiceError("task_not_found", f"Run #{run.number} has no task {task_id}.", status_code=404)
    label = task.step if task.index < 0 else f"{task.step}[{task.index}]"
    if task.state != TASK_FAILED:
        raise ServiceError(
            "task_not_failed", f"Task {label} is {task.state}; only a failed task can be retried.", status_code=409
        )
    if run.cancel_requested:
        raise ServiceError(
            "run_cancelled", f"Run #{run.number} was cancelled; resume it to run what is left.", status_code=409
        )
    if run.state != RUN_FAILED:
        raise ServiceError(
            "run_not_finished",
            f"Run #{run.number} is still {run.state}; retry its task once the run has stopped.",
            status_code=409,
        )
    previous = task.error
    task.state, task.error, task.lease, task.lease_expires_at = TASK_QUEUED, None, "", None
    task.not_before, task.ended_at = None, None
    task.save(update_fields=["state", "error", "lease", "lease_expires_at", "not_before", "ended_at"])
    run.tasks_failed = max(run.tasks_failed - 1, 0)
    fields = ["tasks_failed", "state", "ended_at", "error", "tasks_total"]
    if run.tasks_failed == 0:
        removed, _ = Task.all_teams.filter(run_id=run.pk, state=TASK_UPSTREAM_FAILED).delete()
        run.tasks_total = max(run.tasks_total - removed, 0)
        Task.all_teams.filter(run_id=run.pk, state=TASK_CANCELLED).update(
            state=TASK_QUEUED, ended_at=None, lease="", lease_expires_at=None, not_before=None
        )
        run.error = None
    else:
        other = Task.all_teams.filter(run_id=run.pk, state=TASK_FAILED).order_by("ended_at", "id").first()
        run.error = error_summary(other, other.error) if other else None
    run.state, run.ended_at = RUN_RUNNING, None
    run.save(update_fields=fields)
    _tracking_reopen(run)
    run_audit(
        run=run,
        actor=actor,
        verb="retry",
        details={
            "task": task.pk,
            "step": task.step,
            "index": task.index if task.index >= 0 else None,
            "error": (previous or {}).get("message", "")[:200],
        },
    )
    run = run_advance(run=run, completed=None)
    dispatch_soon()
    return run


def _tracking_reopen(run: PipelineRun) -> None:
    """The tracking run was closed FAILED with the pipeline run; it runs again."""
    if not run.tracking_run:
        return
    from cellar_server.teams.models import Team
    from cellar_server.tracking.errors import TrackingError
    from cellar_server.tracking.services.runs import run_get, run_update

    try:
        tracked = run_get(team=Team.objects.get(pk=run.team_id), run_id=run.tracking_run)
    except TrackingError:
        return
    run_update(run=tracked, status="RUNNING")
