"""Schedules: runs of a pipeline's `production` version on a cron expression, in UTC.

A schedule names the pipeline, not a version: each firing runs whatever `production` points at
then (none -> the firing is skipped with a log line and the schedule kept). `next_run_at` is
computed when the schedule is saved and after each firing; the beat task
(`cellar.engine.schedules`, every CELLAR_ENGINE_SCHEDULES_INTERVAL seconds) calls
`schedules_tick`, which fires the due ones. Catch-up: a schedule that missed several slots while
the control plane was down fires once, then resumes at its next slot after now.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from cellar.pipelines.runner.parameters import ParameterError, resolve_parameters
from cellar.pipelines.spec import PipelineSpec
from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.pipelines.models import Pipeline, PipelineVersion, Schedule
from cellar_server.teams.actors import SYSTEM, Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record

logger = logging.getLogger(__name__)

MAX_PER_PIPELINE = 20
PER_TICK = 500


# --- cron --------------------------------------------------------------------------------------


def cron_validate(cron: Any) -> str:
    """The expression, whitespace normalised; ServiceError `invalid_cron` saying how to write one."""
    text = " ".join(str(cron or "").split())
    fields = text.split(" ")
    plain = len(fields) == 5 and not text.startswith("@")
    alias = len(fields) == 1 and text in ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually")
    if not (plain or alias) or not croniter.is_valid(text):
        raise ServiceError(
            "invalid_cron",
            f"'{text}' is not a cron expression. Write five fields, minute hour day-of-month month day-of-week, "
            "in UTC: '0 3 * * *' runs at 03:00 every day, '*/15 * * * *' every 15 minutes "
            "(or @hourly, @daily, @weekly, @monthly).",
        )
    return text


def cron_next(cron: str, *, after: datetime) -> datetime:
    """The first time strictly after `after` that `cron` names (UTC)."""
    return croniter(cron, after.astimezone(UTC)).get_next(datetime).astimezone(UTC)


# --- reads -------------------------------------------------------------------------------------


def schedule_list(*, pipeline: Pipeline) -> QuerySet[Schedule]:
    return Schedule.objects.filter(pipeline=pipeline).select_related("created_by").order_by("id")


def schedule_for_id(*, pipeline: Pipeline, schedule_id: int) -> Schedule | None:
    return schedule_list(pipeline=pipeline).filter(pk=schedule_id).first()


# --- writes ------------------------------------------------------------------------------------


def _parameters_check(pipeline: Pipeline, parameters: Any) -> dict[str, Any]:
    """A JSON object; checked against the current production version's parameters when there is one
    (a later version may change them: each firing checks again and logs what it refuses)."""
    if not isinstance(parameters, dict):
        raise ServiceError("invalid_parameters", "'parameters' must be a JSON object of parameter name -> value.")
    version = pipeline.production
    if version is not None:
        spec = PipelineVersion.all_teams.only("spec").get(pk=version.pk).spec
        try:
            resolve_parameters(PipelineSpec.from_dict(spec), parameters)
        except ParameterError as exc:
            raise ServiceError("invalid_parameters", f"{exc} (production is v{version.number}).") from None
    return dict(parameters)


def _label(schedule: Schedule) -> dict[str, Any]:
    return {"cron": schedule.cron, "parameters": schedule.parameters, "enabled": schedule.enabled}


@transaction.atomic
def schedule_create(
    *,
    team: Team,
    pipeline: Pipeline,
    cron: str,
    parameters: dict[str, Any] | None = None,
    enabled: bool = True,
    actor: Actor,
    now: datetime | None = None,
) -> Schedule:
    if pipeline.team_id != team.pk:
        raise ServiceError("not_found", "That pipeline does not belong to this team.", status_code=404)
    cron = cron_validate(cron)
    parameters = _parameters_check(pipeline, parameters or {})
    with team_scope(team.id):
        Pipeline.objects.select_for_update().get(pk=pipeline.pk)  # counts below see every racing create
        if Schedule.objects.filter(pipeline=pipeline).count() >= MAX_PER_PIPELINE:
            raise ServiceError(
                "too_many_schedules",
                f"Pipeline '{pipeline.name}' already has {MAX_PER_PIPELINE} schedules; delete one first.",
                status_code=409,
            )
        schedule = Schedule.objects.create(
            team=team,
            pipeline=pipeline,
            cron=cron,
            parameters=parameters,
            enabled=enabled,
            next_run_at=cron_next(cron, after=now or timezone.now()) if enabled else None,
            created_by=actor.user,
        )
    audit_record(
        team=team,
        actor=actor,
        verb="pipeline.schedule_create",
        target_type="schedule",
        target_id=schedule.pk,
        target_repr=f"{pipeline.name} {cron}",
        details={"pipeline": pipeline.name, **_label(schedule)},
    )
    return schedule


@transaction.atomic
def schedule_update(
    *,
    schedule: Schedule,
    actor: Actor,
    cron: str | None = None,
    parameters: dict[str, Any] | None = None,
    enabled: bool | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Change what is given; next_run_at is recomputed from now when the cron or `enabled` changes."""
    locked = Schedule.all_teams.select_for_update().select_related("pipeline").get(pk=schedule.pk)
    before = _label(locked)
    retime = False
    if cron is not None:
        cron = cron_validate(cron)
        retime |= cron != locked.cron
        locked.cron = cron
    if parameters is not None:
        locked.parameters = _parameters_check(locked.pipeline, parameters)
    if enabled is not None:
        retime |= enabled != locked.enabled
        locked.enabled = enabled
    if retime:
        locked.next_run_at = cron_next(locked.cron, after=now or timezone.now()) if locked.enabled else None
    locked.save(update_fields=["cron", "parameters", "enabled", "next_run_at"])
    after = _label(locked)
    if after != before:
        audit_record(
            team=locked.team,
            actor=actor,
            verb="pipeline.schedule_update",
            target_type="schedule",
            target_id=locked.pk,
            target_repr=f"{locked.pipeline.name} {locked.cron}",
            details={k: {"from": before[k], "to": after[k]} for k in after if after[k] != before[k]},
        )
    return locked


@transaction.atomic
def schedule_delete(*, schedule: Schedule, actor: Actor) -> None:
    pipeline_name = schedule.pipeline.name
    audit_record(
        team=schedule.team,
        actor=actor,
        verb="pipeline.schedule_delete",
        target_type="schedule",
        target_id=schedule.pk,
        target_repr=f"{pipeline_name} {schedule.cron}",
        details={"pipeline": pipeline_name, **_label(schedule)},
    )
    Schedule.all_teams.filter(pk=schedule.pk).delete()


# --- firing ------------------------------------------------------------------------------------


def schedules_tick(*, now: datetime | None = None) -> dict[str, int]:
    """Fire every enabled schedule whose next_run_at has come. -> {"started", "skipped", "failed"}"""
    now = now or timezone.now()
    counts = {"started": 0, "skipped": 0, "failed": 0}
    due = Schedule.all_teams.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at", "id")
    for schedule_id in list(due.values_list("id", flat=True)[:PER_TICK]):
        outcome = _fire(schedule_id, now=now)
        if outcome:
            counts[outcome] += 1
    return counts


def _fire(schedule_id: int, *, now: datetime) -> str | None:
    from cellar_server.pipelines.engine.runs import run_create

    with transaction.atomic():
        schedule = (
            Schedule.all_teams.select_for_update(skip_locked=True, of=("self",))
            .select_related("pipeline__production", "team", "created_by")
            .filter(pk=schedule_id, enabled=True, next_run_at__lte=now)
            .first()
        )
        if schedule is None:  # fired by another control worker meanwhile
            return None
        pipeline, version = schedule.pipeline, schedule.pipeline.production
        schedule.next_run_at = cron_next(schedule.cron, after=now)
        where = f"schedule {schedule.pk} ({schedule.cron}) of pipeline '{pipeline.name}' in team '{schedule.team.slug}'"
        if version is None:
            logger.info("engine: %s skipped: the pipeline has no production version; next at %s", where, _iso(schedule))
            outcome = "skipped"
        else:
            actor = Actor(user=schedule.created_by) if schedule.created_by_id else SYSTEM
            try:
                with transaction.atomic(), team_scope(schedule.team_id):  # a savepoint: a refusal keeps the advance
                    run = run_create(
                        team=schedule.team,
                        pipeline=pipeline,
                        version=version,
                        parameters=schedule.parameters,
                        actor=actor,
                        trigger="schedule",
                        schedule=schedule,
                    )
            except (ServiceError, ParameterError) as exc:
                logger.warning("engine: %s could not start a run of v%s: %s", where, version.number, exc)
                outcome = "failed"
            else:
                logger.info("engine: %s started run #%s of v%s", where, run.number, version.number)
                schedule.last_run_at = now
                outcome = "started"
        schedule.save(update_fields=["next_run_at", "last_run_at"])
    return outcome


def _iso(schedule: Schedule) -> str:
    return schedule.next_run_at.isoformat() if schedule.next_run_at else "never"
