"""Runs: start one (a version with parameters), cancel one, resume a failed or cancelled one.

Every pipeline run is also a tracking run (experiment `pipeline:<name>`, run `<name> #<number>`,
tagged cellar.pipeline / cellar.version / cellar.source=pipeline, the parameters logged as
params), created through the tracking app's services in the same transaction: a refused run
leaves nothing behind.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from cellar.pipelines.runner.parameters import ParameterError, resolve_parameters
from cellar.pipelines.spec import PipelineSpec
from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.engine.advance import run_advance
from cellar_server.pipelines.engine.closing import cancel_unstarted
from cellar_server.pipelines.engine.dispatch import dispatch_soon
from cellar_server.pipelines.engine.rows import NewTask, insert_tasks
from cellar_server.pipelines.models import (
    RUN_CANCELLED,
    RUN_FAILED,
    RUN_TERMINAL,
    TASK_DONE_OK,
    TASK_SUCCEEDED,
    Pipeline,
    PipelineRun,
    PipelineVersion,
    Task,
)
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team

TRIGGERS = {"manual", "api", "cli", "schedule", "resume"}
CHUNK = 1000


def run_parameters(*, version: PipelineVersion, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overridden by `parameters`, each typed by its declaration; ServiceError when refused."""
    if parameters is not None and not isinstance(parameters, dict):
        raise ServiceError("invalid_parameters", 'Send the parameters as a JSON object: {"name": value}.')
    spec = PipelineSpec.from_dict(version.spec)
    try:
        values = resolve_parameters(spec, parameters or {})
    except ParameterError as exc:
        raise ServiceError("invalid_parameters", f"{exc}.") from None
    try:
        json.dumps(values, allow_nan=False)
    except ValueError:
        raise ServiceError("invalid_parameters", "Parameter values must be plain JSON (no NaN or Infinity).") from None
    return values


@transaction.atomic
def run_create(
    *,
    team: Team,
    pipeline: Pipeline,
    version: PipelineVersion,
    parameters: dict[str, Any] | None,
    actor: Actor,
    trigger: str = "api",
    use_cache: bool = True,
    resumed_from: PipelineRun | None = None,
    schedule=None,
) -> PipelineRun:
    """Start a run of `version`: its number, its tracking run, its first tasks (dispatched on commit)."""
    if version.pipeline_id != pipeline.pk or pipeline.team_id != team.pk:
        raise ServiceError("invalid_version", "That version belongs to another pipeline.")
    if trigger not in TRIGGERS:
        raise ServiceError(
            "invalid_trigger", f"'{trigger}' is not a trigger; use one of {', '.join(sorted(TRIGGERS))}."
        )
    values = run_parameters(version=version, parameters=parameters)
    # Numbering needs the pipeline serialized (PostgreSQL: a row lock; SQLite: one writer at a time).
    Pipeline.all_teams.select_for_update().filter(pk=pipeline.pk).values_list("pk", flat=True).first()
    number = (PipelineRun.all_teams.filter(pipeline_id=pipeline.pk).aggregate(n=Max("number"))["n"] or 0) + 1
    run = PipelineRun.all_teams.create(
        team=team,
        pipeline=pipeline,
        version=version,
        number=number,
        parameters=values,
        trigger=trigger,
        use_cache=bool(use_cache),
        resumed_from=resumed_from,
        schedule=schedule,
        created_by=actor.user,
    )
    run.tracking_run = _tracking_run(team=team, pipeline=pipeline, version=version, run=run, actor=actor)
    run.save(update_fields=["tracking_run"])
    if resumed_from is not None:
        _clone_succeeded(source=resumed_from, run=run)
    run = run_advance(run=run)
    dispatch_soon()
    _audit(run=run, actor=actor, verb="resume" if resumed_from else "create", resumed_from=resumed_from)
    return run


def _audit(*, run: PipelineRun, actor: Actor, verb: str, resumed_from: PipelineRun | None = None) -> None:
    from cellar_server.pipelines.engine.retry import run_audit

    details = {"trigger": run.trigger, "version": run.version_id}
    if resumed_from is not None:
        details["resumed_from"] = resumed_from.number
    run_audit(run=run, actor=actor, verb=verb, details=details)


def _tracking_run(*, team: Team, pipeline: Pipeline, version: PipelineVersion, run: PipelineRun, actor: Actor) -> str:
    from cellar_server.tracking.errors import TrackingError
    from cellar_server.tracking.services import experiments, runs
    from cellar_server.tracking.validation import MAX_PARAM_VALUE_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

    name = f"pipeline:{pipeline.name}"
    try:
        experiment = experiments.experiment_get_by_name(team=team, name=name)
    except TrackingError:
        try:
            with transaction.atomic():
                experiment = experiments.experiment_create(team=team, name=name)
        except TrackingError:  # created meanwhile by another run of the same pipeline
            experiment = experiments.experiment_get_by_name(team=team, name=name)
    tags = {
        "cellar.pipeline": pipeline.name,
        "cellar.version": version.hash,
        "cellar.version_number": str(version.number),
        "cellar.run": str(run.number),
        "cellar.source": "pipeline",
        "cellar.trigger": run.trigger,
        "mlflow.source.type": "PIPELINE",
        "mlflow.source.name": f"{pipeline.name} v{version.number}",
    }
    tracked = runs.run_create(
        team=team,
        experiment=experiment,
        user=actor.user,
        run_name=f"{pipeline.name} #{run.number}",
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )
    params = [
        {"key": key, "value": json.dumps(value)[:MAX_PARAM_VALUE_LENGTH]}
        for key, value in sorted(run.parameters.items())[:MAX_PARAMS_TAGS_PER_BATCH]
    ]
    if params:
        runs.run_log_batch(run=tracked, params=params)
    return tracked.run_uuid


@transaction.atomic
def run_cancel(*, run: PipelineRun, actor: Actor) -> PipelineRun:
    """Stop a run: queued tasks are cancelled at once, running ones are told by their heartbeat;
    the run is `cancelled` once nothing is in flight. Cancelling a cancelling run is a no-op."""
    run = PipelineRun.all_teams.select_for_update().get(pk=run.pk)
    if run.state in RUN_TERMINAL:
        raise ServiceError(
            "run_finished", f"Run #{run.number} already {run.state}; there is nothing to cancel.", status_code=409
        )
    if not run.cancel_requested:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        cancel_unstarted(run=run)
        _audit(run=run, actor=actor, verb="cancel")
    return run_advance(run=run, completed=[])


@transaction.atomic
def run_resume(*, run: PipelineRun, actor: Actor) -> PipelineRun:
    """A new run of the same version and parameters (trigger `resume`) that reuses, by pointer,
    every task the old run finished and runs the rest: the failed tasks and what depends on them."""
    run = PipelineRun.all_teams.select_related("pipeline", "version", "team").get(pk=run.pk)
    if run.state not in (RUN_FAILED, RUN_CANCELLED):
        raise ServiceError(
            "run_not_resumable",
            f"Run #{run.number} is {run.state}; only a failed or cancelled run can be resumed.",
            status_code=409,
        )
    return run_create(
        team=run.team,
        pipeline=run.pipeline,
        version=run.version,
        parameters=run.parameters,
        actor=actor,
        trigger="resume",
        use_cache=run.use_cache,
        resumed_from=run,
    )


def _clone_succeeded(*, source: PipelineRun, run: PipelineRun) -> None:
    """Copy the source run's finished tasks (succeeded or cached) as `succeeded`, by pointer."""
    now = timezone.now()
    rows = Task.all_teams.filter(run_id=source.pk, state__in=sorted(TASK_DONE_OK)).order_by("id")
    clones = [
        NewTask(
            team_id=run.team_id,
            run_id=run.pk,
            step=task.step,
            index=task.index,
            kind=task.kind,
            pool=task.pool,
            state=TASK_SUCCEEDED,
            inputs=task.inputs,
            item=task.item,
            outputs=task.outputs,
            items=task.items,
            logs=task.logs,
            cache_key=task.cache_key,
            cloned_from_id=task.pk,
            created_at=now,
            started_at=task.started_at,
            ended_at=task.ended_at,
        )
        for task in rows.iterator(chunk_size=CHUNK)
    ]
    insert_tasks(clones)
    run.tasks_total += len(clones)
    run.tasks_done += len(clones)
    run.save(update_fields=["tasks_total", "tasks_done"])
