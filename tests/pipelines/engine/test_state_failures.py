"""Failures: retries with backoff, a failure that stops the run (queued work cancelled, running work
finishing, the error naming step, cell and line), lost workers requeued without consuming a retry,
stale results and claims refused, timeouts, invalid and duplicate results."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cellar.pipelines.wire import CANCELLED, SUCCEEDED, TaskReport
from cellar_server.pipelines.engine.results import task_requeue
from cellar_server.pipelines.models import Task
from cellar_server.tracking.models import Run
from tests.pipelines.engine.conftest import (
    expire_backoff,
    failing_notebook,
    fresh,
    linear_notebook,
    states,
    task_of,
)

pytestmark = pytest.mark.django_db


def attempts(task: Task) -> list[str]:
    return list(task.attempts.order_by("number").values_list("state", flat=True))


def one_round(worker, run) -> None:
    """Take what is dispatched now, run it for real, report it (no second round: a retry waiting
    out its backoff must not be picked up by a slow test)."""
    assigned = worker.take(run)
    worker.claim(assigned)
    worker.report([worker.execute(a) for a in assigned])


def test_a_failure_with_retries_left_waits_out_its_backoff_then_runs_again(promote, start_run, worker):
    run = start_run(promote(failing_notebook(retry=2), "flaky"))
    one_round(worker, run)  # load succeeds
    one_round(worker, run)  # boom fails (really: it raises)
    boom = task_of(run, "boom")
    assert boom.state == "queued" and boom.attempt == 1 and boom.lease == ""
    failed_at = boom.attempts.get().ended_at
    assert boom.not_before == failed_at + timedelta(seconds=2)  # 2^1 s backoff from the failure
    assert boom.error["exc_type"] == "ValueError" and attempts(boom) == ["failed"]
    # The dispatcher leaves it until not_before (moved far ahead: tests never race the clock).
    Task.all_teams.filter(pk=boom.pk).update(not_before=timezone.now() + timedelta(hours=1))
    assert worker.take(run) == []
    assert fresh(run).state == "running" and fresh(run).tasks_failed == 0
    expire_backoff(run)
    (again,) = worker.take(run)
    assert again.item.attempt == 2
    worker.claim([again])
    worker.report([worker.succeed(again, y=2, z=2)])
    run = worker.drain(run)
    assert run.state == "succeeded" and run.tasks_failed == 0 and run.error is None
    assert attempts(task_of(run, "boom")) == ["failed", "succeeded"]


def test_retries_run_out_then_the_task_fails(promote, start_run, worker):
    run = start_run(promote(failing_notebook(retry=1), "flaky"))
    worker.drain(run)
    expire_backoff(run)
    run = worker.drain(run)
    assert run.state == "failed"
    assert attempts(task_of(run, "boom")) == ["failed", "failed"]


def test_a_failure_without_retries_fails_the_run_naming_step_cell_and_line(promote, start_run, worker, team):
    run = worker.drain(start_run(promote(failing_notebook(), "fails")))
    assert run.state == "failed" and run.ended_at is not None
    error = run.error
    assert (error["step"], error["cell"], error["line"]) == ("boom", 1, 2)
    assert error["type"] == "ValueError" and error["message"] == "bad input"
    assert "raise ValueError('bad input')" in error["traceback"]
    assert states(run) == {"load": "succeeded", "boom": "failed", "after": "upstream_failed"}
    assert (run.tasks_total, run.tasks_done, run.tasks_failed) == (3, 1, 1)
    assert Run.all_teams.get(run_uuid=run.tracking_run).status == "FAILED"


def test_a_failure_cancels_queued_work_and_lets_running_work_finish(fanout_version, start_run, worker):
    run = start_run(fanout_version, {"n": 3})
    (make,) = worker.take(run)
    worker.claim([make])
    worker.report([worker.execute(make)])
    (expand,) = worker.take(run)
    worker.claim([expand])
    worker.report([worker.succeed(expand, items=[1, 2, 3])])
    squares = {a.item.index: a for a in worker.take(run)}
    worker.claim([squares[0], squares[1]])  # square[2] stays dispatched, unclaimed
    worker.report([worker.fail(squares[0], "no memory", "MemoryError")])
    assert states(run)["square[2]"] == "cancelled"
    assert states(run)["square[1]"] == "running"
    assert fresh(run).state == "running"  # square[1] is still in flight
    assert worker.claim([squares[2]])["refused"] == {str(squares[2].item.task): "cancelled"}
    # The running one finishes and is recorded, but nothing new starts.
    assert worker.report([worker.succeed(squares[1], sq=4)])["accepted"] == [squares[1].item.task]
    run = fresh(run)
    assert run.state == "failed"
    assert run.error["step"] == "square" and run.error["index"] == 0 and run.error["type"] == "MemoryError"
    assert states(run) == {
        "make": "succeeded",
        "square (expand)": "succeeded",
        "square[0]": "failed",
        "square[1]": "succeeded",
        "square[2]": "cancelled",
        "plus[0]": "upstream_failed",
        "plus[1]": "upstream_failed",
        "plus[2]": "upstream_failed",
        "total": "upstream_failed",
        "show": "upstream_failed",
    }


def test_a_lost_worker_requeues_without_consuming_a_retry(linear_version, start_run, worker):
    run = start_run(linear_version)
    (first,) = worker.take(run)
    worker.claim([first])
    task = task_of(run, "load")
    # A live lease is left alone: the reconciler only requeues expired ones.
    assert task_requeue(task=task, reason="lost", consume_retry=False) == "running"
    Task.all_teams.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert task_requeue(task=task, reason="lost", consume_retry=False) == "queued"
    task = task_of(run, "load")
    assert (task.state, task.lost_attempts, task.not_before) == ("queued", 1, None)
    assert attempts(task) == ["lost"]
    # The lost worker comes back with its result: stale, refused, nothing recorded.
    answer = worker.report([worker.succeed(first, x=21)])
    assert answer == {"accepted": [], "refused": {str(first.item.task): "stale"}}
    assert worker.claim([first])["refused"] == {str(first.item.task): "stale"}
    (second,) = worker.take(run)
    assert second.item.attempt == 2 and second.item.lease != first.item.lease
    run = worker.drain(run)
    assert run.state == "succeeded"  # step `load` has retry 0: the loss did not use it up
    assert attempts(task_of(run, "load")) == ["lost", "succeeded"]


def test_a_task_lost_max_lost_times_fails(linear_version, start_run, worker, settings):
    settings.CELLAR_ENGINE_MAX_LOST = 2
    run = start_run(linear_version)
    for expected in ("queued", "failed"):
        (assigned,) = worker.take(run)
        worker.claim([assigned])
        task = task_of(run, "load")
        Task.all_teams.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert task_requeue(task=task, reason="lost", consume_retry=False) == expected
    run = fresh(run)
    assert run.state == "failed" and run.error["type"] == "TaskLost"
    assert "2 times" in run.error["message"]


def test_a_claimed_live_lease_is_refused_to_another_worker(linear_version, start_run, worker, store):
    from tests.pipelines.engine.conftest import FakeWorker

    run = start_run(linear_version)
    (assigned,) = worker.take(run)
    other = FakeWorker(store, name="worker-2")
    assert worker.claim([assigned])["claimed"] == [assigned.item.task]
    # The same message redelivered to another worker (visibility timeout): it must drop it.
    assert other.claim([assigned]) == {"claimed": [], "refused": {str(assigned.item.task): "claimed"}}
    # The holder asking again (an HTTP retry) is told it holds it.
    assert worker.claim([assigned])["claimed"] == [assigned.item.task]
    assert task_of(run, "load").worker == "worker-1"


def test_a_timeout_counts_as_a_retry(promote, start_run, worker):
    run = start_run(promote(failing_notebook(retry=1), "slow"))
    one_round(worker, run)
    one_round(worker, run)  # boom's first attempt really fails
    expire_backoff(run)
    (boom,) = worker.take(run)
    worker.claim([boom])
    worker.report([worker.fail(boom, "the step ran longer than its timeout of 5s", "StepTimeout")])
    run = fresh(run)
    assert run.state == "failed" and run.error["type"] == "StepTimeout"
    assert attempts(task_of(run, "boom")) == ["failed", "timed_out"]


def test_a_task_the_agent_gives_back_is_requeued_without_using_a_retry(linear_version, start_run, worker):
    run = start_run(linear_version)
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    item = assigned.item
    worker.report([TaskReport(task=item.task, lease=item.lease, token=item.token, state=CANCELLED)])
    task = task_of(run, "load")
    assert (task.state, task.lost_attempts) == ("queued", 1)
    assert worker.drain(run).state == "succeeded"


def test_a_success_without_the_declared_outputs_is_a_failure(promote, start_run, worker):
    run = start_run(promote(linear_notebook(), "partial"))
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    worker.report([worker.succeed(assigned, other=1)])
    run = fresh(run)
    assert run.state == "failed" and run.error["type"] == "InvalidResult"
    assert "'x'" in run.error["message"]


def test_a_repeated_result_is_accepted_once(linear_version, start_run, worker):
    run = start_run(linear_version)
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    report = worker.succeed(assigned, x=21)
    assert worker.report([report])["accepted"] == [assigned.item.task]
    assert worker.report([report]) == {"accepted": [assigned.item.task], "refused": {}}
    run = fresh(run)
    assert (run.tasks_done, run.tasks_total) == (1, 2)
    assert report.state == SUCCEEDED and attempts(task_of(run, "load")) == ["succeeded"]


def test_heartbeats_extend_live_leases_and_call_stale_ones_stale(linear_version, start_run, worker):
    run = start_run(linear_version)
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    soon = timezone.now() + timedelta(seconds=1)
    Task.all_teams.filter(pk=assigned.item.task).update(lease_expires_at=soon)
    assert worker.heartbeat([assigned]) == {"alive": [assigned.item.task], "cancel": [], "stale": []}
    assert task_of(run, "load").lease_expires_at >= soon - timedelta(seconds=1) + timedelta(seconds=30)  # the TTL
    Task.all_teams.filter(pk=assigned.item.task).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    task_requeue(task=task_of(run, "load"), reason="lost", consume_retry=False)
    assert worker.heartbeat([assigned]) == {"alive": [], "cancel": [], "stale": [assigned.item.task]}
    # A stale heartbeat never revives the requeued task's lease.
    assert task_of(run, "load").lease_expires_at is None


def test_a_step_timeout_counts_from_when_the_agent_started_the_task_not_from_the_claim(promote, start_run, worker):
    # A batch's tasks are all claimed at once but run one after the other: one still waiting its
    # turn (no started_at) is not overdue however long ago the claim was; one that started
    # longer ago than timeout + grace is told to stop.
    from cellar.pipelines.wire import Lease
    from cellar_server.pipelines.engine.results import tasks_heartbeat
    from tests.pipelines.engine.conftest import build_notebook, cell

    version = promote(build_notebook(cell("x = 1", "step:slow", "timeout:2")), name="slow")
    run = start_run(version)
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    Task.all_teams.filter(pk=assigned.item.task).update(started_at=timezone.now() - timedelta(hours=1))
    lease = assigned.lease
    waiting = tasks_heartbeat(worker="w", leases=[lease])
    assert waiting == {"alive": [lease.task], "cancel": [], "stale": []}
    just_started = Lease(lease.task, lease.lease, lease.token, started_at=timezone.now().timestamp() - 1)
    assert tasks_heartbeat(worker="w", leases=[just_started])["alive"] == [lease.task]
    long_ago = Lease(lease.task, lease.lease, lease.token, started_at=timezone.now().timestamp() - 3600)
    assert tasks_heartbeat(worker="w", leases=[long_ago])["cancel"] == [lease.task]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"inline": "43"}, id="text-not-matching-its-digest"),
        pytest.param({"serializer": "pickle"}, id="inline-that-is-not-json"),
        pytest.param({"size": 5}, id="size-not-the-texts"),
    ],
)
def test_an_inline_value_that_is_not_its_reference_is_an_invalid_result(linear_version, start_run, worker, tamper):
    run = start_run(linear_version)
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    report = worker.succeed(assigned, x=42)
    assert report.outputs["x"]["inline"] == "42"
    report.outputs["x"].update(tamper)
    worker.report([report])
    run = fresh(run)
    assert run.state == "failed" and run.error["type"] == "InvalidResult"


def test_an_inline_value_is_kept_as_reported_and_read_by_the_next_step(linear_version, start_run, worker):
    run = start_run(linear_version)
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    worker.report([worker.succeed(assigned, x=21)])
    assert task_of(fresh(run), "load").outputs["x"]["inline"] == "21"
    assert worker.drain(run).state == "succeeded"
