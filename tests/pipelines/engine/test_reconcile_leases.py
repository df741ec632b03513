"""The reconciler and lost workers: an expired lease of a running task is lost, requeued without
using a retry, dispatched again with a new lease (the old one fenced off), and given up after
CELLAR_ENGINE_MAX_LOST; open runs with nothing in flight are advanced or closed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cellar_server.pipelines import tasks as control_tasks
from cellar_server.pipelines.engine.reconcile import reconcile
from cellar_server.pipelines.models import (
    RUN_FAILED,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    TASK_DISPATCHED,
    TASK_QUEUED,
    TASK_SUCCEEDED,
    PipelineRun,
    Task,
    TaskAttempt,
)
from tests.pipelines.engine.conftest import fresh, task_of

pytestmark = pytest.mark.django_db


def _expire(task_id: int) -> None:
    Task.all_teams.filter(pk=task_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def _attempts(task_id: int) -> list[tuple[int, str, str]]:
    return list(
        TaskAttempt.all_teams.filter(task_id=task_id).order_by("number").values_list("number", "state", "lease")
    )


def test_a_running_task_whose_lease_expired_is_lost_and_dispatched_again(linear_version, start_run, worker):
    run = start_run(linear_version)
    [load] = worker.take(run)
    assert worker.claim([load])["claimed"] == [load.item.task]
    _expire(load.item.task)

    counts = reconcile()

    assert counts["lost"] == 1 and counts["dispatched"] == 1
    task = Task.all_teams.get(pk=load.item.task)
    assert (task.state, task.attempt, task.lost_attempts) == (TASK_DISPATCHED, 2, 1)
    assert task.lease != load.item.lease
    assert _attempts(task.pk) == [(1, "lost", load.item.lease), (2, TASK_DISPATCHED, task.lease)]

    # the lost worker comes back and reports: fenced off
    late = worker.report([worker.succeed(load, x=21)])
    assert str(load.item.task) in late["refused"]

    # the new attempt runs and the run succeeds with exactly one succeeded attempt of `load`
    assert worker.drain(run).state == RUN_SUCCEEDED
    states = [state for _n, state, _lease in _attempts(task.pk)]
    assert states == ["lost", TASK_SUCCEEDED]


def test_a_lost_attempt_does_not_use_up_a_retry(promote, start_run, worker):
    from tests.pipelines.engine.conftest import failing_notebook

    run = start_run(promote(failing_notebook(retry=1), "flaky"))
    [load] = worker.take(run)
    worker.claim([load])
    _expire(load.item.task)
    reconcile()
    task = Task.all_teams.get(pk=load.item.task)
    assert task.state == TASK_DISPATCHED and task.not_before is None  # no backoff: not the user's fault


def test_a_task_lost_max_lost_times_fails_the_run(linear_version, start_run, worker, settings):
    settings.CELLAR_ENGINE_MAX_LOST = 3
    run = start_run(linear_version)
    for _ in range(3):
        assigned = worker.take(run)
        assert [a.step for a in assigned] == ["load"]
        worker.claim(assigned)
        _expire(assigned[0].item.task)
        reconcile()

    task = task_of(run, "load")
    assert task.state == "failed" and task.lost_attempts == 3
    assert [state for _n, state, _lease in _attempts(task.pk)] == ["lost", "lost", "lost"]
    run = fresh(run)
    assert run.state == RUN_FAILED
    assert "lost" in run.error["message"]


def test_a_live_lease_is_left_alone(linear_version, start_run, worker):
    run = start_run(linear_version)
    assigned = worker.take(run)
    worker.claim(assigned)

    assert reconcile()["lost"] == 0

    task = Task.all_teams.get(pk=assigned[0].item.task)
    assert task.state == "running" and task.attempt == 1


def test_a_run_whose_advance_was_lost_is_advanced(linear_version, start_run, worker):
    run = start_run(linear_version)
    [load] = worker.take(run)
    worker.claim([load])
    worker.report([worker.succeed(load, x=21)])
    # The process that handled the result died before the next task existed.
    Task.all_teams.filter(run_id=run.pk, step="double").delete()

    counts = reconcile()

    assert counts["runs_advanced"] == 1
    double = task_of(run, "double")
    assert double.state == TASK_DISPATCHED  # created, then dispatched in the same pass
    assert worker.drain(run).state == RUN_SUCCEEDED


def test_a_run_whose_tasks_all_ended_is_closed(linear_version, start_run, worker):
    run = worker.drain(start_run(linear_version))
    assert run.state == RUN_SUCCEEDED
    # Its last result was recorded but the run was never closed.
    PipelineRun.all_teams.filter(pk=run.pk).update(state=RUN_RUNNING, ended_at=None)

    assert reconcile()["runs_advanced"] == 1
    assert fresh(run).state == RUN_SUCCEEDED
    assert reconcile()["runs_advanced"] == 0  # closed runs are not looked at again


def test_queued_work_is_dispatched_by_the_beat(linear_version, start_run):
    """The beat's reconcile also dispatches: ready work never waits on a lost dispatch request."""
    run = start_run(linear_version)
    assert task_of(run, "load").state == TASK_QUEUED  # its dispatch request went nowhere (no commit here)

    counts = control_tasks.engine_reconcile()

    assert counts["dispatched"] == 1
    assert task_of(run, "load").state == TASK_DISPATCHED
