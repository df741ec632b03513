"""Cancel (queued work at once, running work through its heartbeat, the run closed when nothing is
in flight) and resume (a new run cloning finished tasks by pointer and rerunning the rest)."""

from __future__ import annotations

import pytest

from cellar.pipelines.wire import CANCELLED, TaskReport
from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.engine.runs import run_cancel, run_resume
from cellar_server.pipelines.models import Task
from cellar_server.teams.actors import Actor
from cellar_server.tracking.models import Run
from tests.pipelines.engine.conftest import expire_backoff, failing_notebook, fresh, states, task_of, tasks_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(members) -> Actor:
    return Actor(user=members["editor"])


def _fan_to_branches(worker, run, items):
    (make,) = worker.take(run)
    worker.claim([make])
    worker.report([worker.execute(make)])
    (expand,) = worker.take(run)
    worker.claim([expand])
    worker.report([worker.succeed(expand, items=items)])
    return {a.item.index: a for a in worker.take(run)}


def test_cancel_stops_queued_work_at_once_and_running_work_through_its_heartbeat(
    fanout_version, start_run, worker, editor
):
    run = start_run(fanout_version, {"n": 3})
    squares = _fan_to_branches(worker, run, [1, 2, 3])
    worker.claim([squares[0]])
    run = run_cancel(run=run, actor=editor)
    assert run.cancel_requested and run.state == "running"
    assert states(run)["square[1]"] == states(run)["square[2]"] == "cancelled"
    assert states(run)["square[0]"] == "running"
    assert worker.heartbeat([squares[0]]) == {"alive": [], "cancel": [squares[0].item.task], "stale": []}
    assert worker.take(run) == []  # nothing new is dispatched for a cancelled run
    item = squares[0].item
    worker.report([TaskReport(task=item.task, lease=item.lease, token=item.token, state=CANCELLED)])
    run = fresh(run)
    assert run.state == "cancelled" and run.ended_at is not None
    assert states(run)["square[0]"] == "cancelled" and "plus[0]" not in states(run)
    assert Run.all_teams.get(run_uuid=run.tracking_run).status == "KILLED"


def test_cancel_with_nothing_in_flight_closes_at_once_and_twice_is_refused(linear_version, start_run, editor):
    run = start_run(linear_version)
    run = run_cancel(run=run, actor=editor)
    assert run.state == "cancelled" and states(run) == {"load": "cancelled"}
    with pytest.raises(ServiceError) as caught:
        run_cancel(run=run, actor=editor)
    assert caught.value.code == "run_finished" and caught.value.status_code == 409


def test_a_task_finishing_after_cancel_is_kept(linear_version, start_run, worker, editor):
    run = start_run(linear_version)
    (load,) = worker.take(run)
    worker.claim([load])
    run_cancel(run=run, actor=editor)
    worker.report([worker.succeed(load, x=21)])
    run = fresh(run)
    assert run.state == "cancelled" and states(run) == {"load": "succeeded"}


def test_resume_clones_finished_tasks_by_pointer_and_reruns_the_failed_one(promote, start_run, worker, editor):
    version = promote(failing_notebook(), "fails")
    failed = worker.drain(start_run(version))
    assert failed.state == "failed"
    resumed = run_resume(run=failed, actor=editor)
    assert resumed.number == 2 and resumed.trigger == "resume" and resumed.resumed_from_id == failed.pk
    assert resumed.parameters == failed.parameters and resumed.version_id == failed.version_id
    load = task_of(resumed, "load")
    assert load.state == "succeeded" and load.cloned_from_id == task_of(failed, "load").pk
    assert load.outputs == task_of(failed, "load").outputs and load.attempt == 0
    assert states(resumed) == {"load": "succeeded", "boom": "queued"}
    assert task_of(resumed, "boom").inputs == {"x": load.outputs["x"]}
    assert (resumed.tasks_total, resumed.tasks_done) == (2, 1)
    (boom,) = worker.take(resumed)
    worker.claim([boom])
    worker.report([worker.succeed(boom, y=2, z=2)])
    resumed = worker.drain(resumed)
    assert resumed.state == "succeeded"
    assert states(resumed) == {"load": "succeeded", "boom": "succeeded", "after": "succeeded"}
    # The failed run is untouched.
    assert states(failed) == {"load": "succeeded", "boom": "failed", "after": "upstream_failed"}


def test_resume_of_a_fanout_reruns_only_the_missing_branches(fanout_version, start_run, worker, editor):
    run = start_run(fanout_version, {"n": 3})
    squares = _fan_to_branches(worker, run, [1, 2, 3])
    worker.claim(list(squares.values()))
    worker.report([worker.execute(squares[0]), worker.fail(squares[1]), worker.execute(squares[2])])
    # One batch: square[1] failed in it, so no plus task was created for square[0] or square[2].
    run = fresh(run)
    assert run.state == "failed"
    resumed = run_resume(run=run, actor=editor)
    done_before = {label for label, state in states(run).items() if state == "succeeded"}
    assert {label for label, state in states(resumed).items() if state == "succeeded"} == done_before
    assert states(resumed)["square[1]"] == "queued"
    assert all(t.cloned_from_id for t in tasks_of(resumed) if t.state == "succeeded")
    resumed = worker.drain(resumed)
    assert resumed.state == "succeeded"
    assert worker.load(task_of(resumed, "total").outputs["sqs"]) == [1, 4, 9]


def test_resume_of_a_cancelled_run_and_refusals(linear_version, start_run, worker, editor):
    run = start_run(linear_version)
    worker.drain(run)
    with pytest.raises(ServiceError) as caught:
        run_resume(run=fresh(run), actor=editor)
    assert caught.value.code == "run_not_resumable" and caught.value.status_code == 409
    second = start_run(linear_version, use_cache=False)
    (load,) = worker.take(second)
    worker.claim([load])
    worker.report([worker.succeed(load, x=21)])
    cancelled = run_cancel(run=second, actor=editor)
    assert cancelled.state == "cancelled"
    resumed = run_resume(run=cancelled, actor=editor)
    assert not resumed.use_cache and states(resumed) == {"load": "succeeded", "double": "queued"}


def test_resume_of_a_retrying_then_failed_run(promote, start_run, worker, editor):
    run = start_run(promote(failing_notebook(retry=1), "flaky"))
    worker.drain(run)
    expire_backoff(run)
    run = worker.drain(run)
    assert run.state == "failed"
    resumed = run_resume(run=run, actor=editor)
    boom = task_of(resumed, "boom")
    assert boom.state == "queued" and boom.attempt == 0 and boom.lost_attempts == 0
    assert Task.all_teams.filter(run_id=resumed.pk).count() == 2
