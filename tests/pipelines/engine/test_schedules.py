"""Schedules: cron in UTC, next_run_at computed on save, and `schedules_tick(now=...)` starting
runs of the production version (the clock is an argument: no sleeping, no patched time)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.pipelines import services
from cellar_server.pipelines.engine.schedules import (
    cron_next,
    cron_validate,
    schedule_create,
    schedule_update,
    schedules_tick,
)
from cellar_server.pipelines.models import PipelineRun, Schedule
from cellar_server.teams.actors import SYSTEM, Actor
from tests.pipelines.engine.conftest import fanout_notebook
from tests.pipelines.engine.dispatch_fixtures import version_for

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 2, 59, 30, tzinfo=UTC)  # a Sunday


def at(hours: float = 0, *, days: int = 0) -> datetime:
    return T0 + timedelta(hours=hours, days=days)


@pytest.fixture
def admin(members):
    return Actor(user=members["admin"])


@pytest.fixture
def production(team):
    """The `fan` pipeline with v1 in production."""
    return version_for(team, production=True)


def _schedule(team, pipeline, admin, cron="0 3 * * *", **kwargs) -> Schedule:
    return schedule_create(team=team, pipeline=pipeline, cron=cron, actor=admin, now=T0, **kwargs)


def _runs(pipeline) -> list[PipelineRun]:
    return list(PipelineRun.all_teams.filter(pipeline=pipeline).order_by("number"))


@pytest.mark.parametrize(
    "cron",
    ["", "* * *", "* * * * * *", "61 * * * *", "* 24 * * *", "0 3 * * mon-xyz", "@reboot", "every day", None],
    ids=["empty", "three-fields", "six-fields", "minute-61", "hour-24", "bad-day", "reboot", "words", "none"],
)
def test_an_expression_that_is_not_cron_is_refused_saying_how_to_write_one(cron):
    with pytest.raises(ServiceError) as info:
        cron_validate(cron)
    assert info.value.code == "invalid_cron"
    assert "'0 3 * * *'" in info.value.message


def test_cron_is_normalised_and_read_in_utc():
    assert cron_validate("  0   3 * *  * ") == "0 3 * * *"
    assert cron_validate("@daily") == "@daily"
    assert cron_next("0 3 * * *", after=T0) == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    # strictly after: a firing at 03:00 schedules the next day's
    assert cron_next("0 3 * * *", after=datetime(2026, 3, 1, 3, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 3, 0, tzinfo=UTC
    )
    assert cron_next("*/15 * * * 1", after=T0) == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday


def test_next_run_at_is_computed_when_the_schedule_is_saved(team, production, admin):
    schedule = _schedule(team, production.pipeline, admin)
    assert schedule.next_run_at == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert schedule.last_run_at is None

    disabled = _schedule(team, production.pipeline, admin, cron="0 4 * * *", enabled=False)
    assert disabled.next_run_at is None


def test_a_due_schedule_starts_one_run_of_the_production_version(team, production, admin):
    schedule = _schedule(team, production.pipeline, admin, parameters={"n": 5})

    assert schedules_tick(now=at(0.002)) == {"started": 0, "skipped": 0, "failed": 0}  # 02:59:37: not yet
    assert _runs(production.pipeline) == []

    assert schedules_tick(now=at(0.01)) == {"started": 1, "skipped": 0, "failed": 0}  # 03:00:06
    [run] = _runs(production.pipeline)
    assert (run.version_id, run.trigger, run.schedule_id) == (production.pk, "schedule", schedule.pk)
    assert run.parameters == {"n": 5, "base": 10}  # defaults overridden by the schedule's values
    assert run.created_by == admin.user and run.tracking_run
    assert run.tasks.exists()  # its first tasks are queued
    schedule.refresh_from_db()
    assert schedule.last_run_at == at(0.01)
    assert schedule.next_run_at == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)

    # the same tick again (a second beat, another control worker): nothing more
    assert schedules_tick(now=at(0.01))["started"] == 0
    assert len(_runs(production.pipeline)) == 1


def test_each_firing_runs_whatever_production_is_then(team, production, admin):
    _schedule(team, production.pipeline, admin)
    schedules_tick(now=at(1))
    newer = version_for(team, fanout_notebook(square_tags=("retry:2",)))
    services.pipeline_production_move(team=team, pipeline=newer.pipeline, version=newer, actor=admin)

    schedules_tick(now=at(1, days=1))

    assert [r.version_id for r in _runs(production.pipeline)] == [production.pk, newer.pk]


def test_without_a_production_version_the_firing_is_skipped_and_the_schedule_kept(team, admin, caplog):
    version = version_for(team)  # promoted, never made production
    schedule = _schedule(team, version.pipeline, admin)

    with caplog.at_level(logging.INFO, logger="cellar_server.pipelines.engine.schedules"):
        assert schedules_tick(now=at(1)) == {"started": 0, "skipped": 1, "failed": 0}

    assert _runs(version.pipeline) == []
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_run_at == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert schedule.last_run_at is None
    assert any("no production version" in r.getMessage() and "'fan'" in r.getMessage() for r in caplog.records)


def test_missed_slots_fire_once_then_resume_after_now(team, production, admin):
    schedule = _schedule(team, production.pipeline, admin, cron="0 * * * *")  # hourly

    assert schedules_tick(now=at(5, days=2))["started"] == 1  # the control plane was down two days

    assert len(_runs(production.pipeline)) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def test_parameters_a_new_production_refuses_fail_the_firing_not_the_schedule(team, production, admin, caplog):
    schedule = _schedule(team, production.pipeline, admin, parameters={"n": 4})
    other = version_for(team, _notebook_without_n())
    services.pipeline_production_move(team=team, pipeline=other.pipeline, version=other, actor=admin)

    with caplog.at_level(logging.WARNING, logger="cellar_server.pipelines.engine.schedules"):
        assert schedules_tick(now=at(1)) == {"started": 0, "skipped": 0, "failed": 1}

    assert _runs(production.pipeline) == []
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert any("unknown parameter 'n'" in r.getMessage() for r in caplog.records)


def _notebook_without_n():
    from tests.pipelines.engine.conftest import build_notebook, cell

    return build_notebook(cell("base = 1", "parameters"), cell("x = base", "step:only"))


def test_parameters_are_checked_against_production_when_saved(team, production, admin):
    with pytest.raises(ServiceError) as info:
        _schedule(team, production.pipeline, admin, parameters={"folds": 3})
    assert info.value.code == "invalid_parameters" and "unknown parameter 'folds'" in info.value.message
    with pytest.raises(ServiceError) as info:
        _schedule(team, production.pipeline, admin, parameters={"n": "many"})
    assert info.value.code == "invalid_parameters"
    with pytest.raises(ServiceError) as info:
        _schedule(team, production.pipeline, admin, parameters=["n", 3])
    assert info.value.code == "invalid_parameters"
    assert not Schedule.all_teams.exists()


def test_disabling_stops_firing_and_enabling_resumes_from_now(team, production, admin):
    schedule = _schedule(team, production.pipeline, admin)
    schedule = schedule_update(schedule=schedule, actor=admin, enabled=False, now=at(0.5))
    assert schedule.next_run_at is None
    assert schedules_tick(now=at(1, days=3))["started"] == 0

    schedule = schedule_update(schedule=schedule, actor=admin, enabled=True, now=at(1, days=3))
    assert schedule.next_run_at == datetime(2026, 3, 5, 3, 0, tzinfo=UTC)
    schedule = schedule_update(schedule=schedule, actor=admin, cron="30 6 * * *", now=at(1, days=3))
    assert schedule.next_run_at == datetime(2026, 3, 4, 6, 30, tzinfo=UTC)


def test_due_schedules_of_every_team_fire(team, other_team, production, admin):
    _schedule(team, production.pipeline, admin)
    theirs = version_for(other_team, production=True)
    schedule_create(team=other_team, pipeline=theirs.pipeline, cron="0 3 * * *", actor=SYSTEM, now=T0)

    assert schedules_tick(now=at(1))["started"] == 2
    with team_scope(other_team.id):
        assert PipelineRun.objects.filter(trigger="schedule").count() == 1


def test_a_pipeline_has_a_bounded_number_of_schedules(team, production, admin, monkeypatch):
    from cellar_server.pipelines.engine import schedules

    monkeypatch.setattr(schedules, "MAX_PER_PIPELINE", 2)
    _schedule(team, production.pipeline, admin)
    _schedule(team, production.pipeline, admin)
    with pytest.raises(ServiceError) as info:
        _schedule(team, production.pipeline, admin)
    assert (info.value.code, info.value.status_code) == ("too_many_schedules", 409)
