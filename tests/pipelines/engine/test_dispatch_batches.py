"""Micro-batching and publishing: many ready tasks of one (run, step) become few broker messages,
each a valid wire.Batch with one lease, token and TaskAttempt per task, published only when the
dispatching transaction commits. Messages are read back from the real Redis list `pool.<name>`."""

from __future__ import annotations

import pytest
import redis
from django.db import transaction

from cellar.pipelines.runner.cache import environment_hash
from cellar.pipelines.spec import PipelineSpec
from cellar.pipelines.wire import Batch
from cellar_server.pipelines.engine import tokens
from cellar_server.pipelines.engine.dispatch import dispatch_all, dispatch_pool, pool_queue
from cellar_server.pipelines.models import TASK_DISPATCHED, TASK_QUEUED, Task, TaskAttempt
from tests.pipelines.engine import dispatch_fixtures as fx
from tests.pipelines.engine.dispatch_fixtures import (
    add_tasks,
    linear_version_for,
    make_run,
    reset_publisher_pools,
    version_for,
)

pytestmark = pytest.mark.django_db
pool, control_broker, queue_reader = fx.pool, fx.control_broker, fx.queue_reader  # fixtures


def test_a_fan_out_is_packed_into_few_messages_with_one_lease_per_task(
    team, pool, settings, queue_reader, django_capture_on_commit_callbacks
):
    settings.CELLAR_ENGINE_POOL_WORKERS = 2
    team.max_concurrent_cpu_tasks = 10_000  # the quota is not what this test is about
    team.save(update_fields=["max_concurrent_cpu_tasks"])
    run = make_run(version_for(team))
    tasks = add_tasks(run, "square", 1000, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        dispatched = dispatch_pool(pool=pool)

    # window = 2 workers x 2 x 200 = 800 tasks; size = ceil(800 / (2 x 2 workers)) = 200
    assert dispatched == 800
    messages = queue_reader(pool)
    assert [len(m["tasks"]) for m in messages] == [200, 200, 200, 200]

    by_id = {t.pk: t for t in Task.all_teams.filter(run=run)}
    seen = []
    for message in messages:
        batch = Batch.from_dict(message)  # a valid wire.Batch, version checked
        assert (batch.team, batch.run, batch.tracking_run) == ("acme", run.pk, run.tracking_run)
        assert batch.step["name"] == "square"
        for item in batch.tasks:
            task = by_id[item.task]
            assert task.state == TASK_DISPATCHED
            assert (item.lease, item.attempt) == (task.lease, 1)
            assert item.index == task.index and item.item == task.item
            payload = tokens.token_verify(item.token, task_id=item.task, lease=item.lease)
            assert payload == {"team": team.pk, "run": run.pk, "task": task.pk, "lease": task.lease}
            seen.append(item.task)
    assert len(seen) == len(set(seen)) == 800
    # the oldest tasks first; the rest wait in the database
    assert sorted(seen) == [t.pk for t in tasks[:800]]
    assert Task.all_teams.filter(run=run, state=TASK_QUEUED).count() == 200
    attempts = TaskAttempt.all_teams.filter(task__run=run)
    assert attempts.count() == 800
    assert {(a.task_id, a.number, a.lease) for a in attempts} == {(t, 1, by_id[t].lease) for t in seen}


def test_a_batch_carries_the_step_its_parameters_source_and_environment(
    team, pool, queue_reader, django_capture_on_commit_callbacks
):
    version = linear_version_for(team)
    run = make_run(version, parameters={"alpha": 5, "label": "x"})
    add_tasks(run, "double", 1, pool=pool, inputs={"x": {"sha256": "a" * 64, "serializer": "json"}})

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=pool) == 1

    [message] = queue_reader(pool)
    spec = PipelineSpec.from_dict(version.spec)
    assert message["step"] == next(s for s in version.spec["steps"] if s["name"] == "double")
    assert message["parameters"] == {"alpha": 5}  # only what the step reads
    assert message["source"] == version.spec["source"]["double"]
    assert message["environment"] == environment_hash(spec.environment)
    assert message["api_url"] == "http://127.0.0.1:8000"
    assert message["timeout"] is None
    [item] = message["tasks"]
    assert item["index"] is None and item["kind"] == "step"
    assert item["inputs"] == {"x": {"sha256": "a" * 64, "serializer": "json"}}


def test_each_run_and_step_gets_its_own_message(team, pool, queue_reader, django_capture_on_commit_callbacks, settings):
    settings.CELLAR_ENGINE_WINDOW_FACTOR = 3  # a window of 3 messages: room for all three groups
    version = version_for(team)
    first, second = make_run(version), make_run(version)
    add_tasks(first, "square", 3, pool=pool)
    add_tasks(first, "make", 1, pool=pool)
    add_tasks(second, "square", 2, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=pool) == 6

    groups = sorted((m["run"], m["step"]["name"], len(m["tasks"])) for m in queue_reader(pool))
    assert groups == sorted([(first.pk, "square", 3), (first.pk, "make", 1), (second.pk, "square", 2)])


def test_a_rolled_back_dispatch_publishes_nothing(team, pool, queue_reader, django_capture_on_commit_callbacks):
    run = make_run(version_for(team))
    add_tasks(run, "square", 5, pool=pool)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            assert dispatch_pool(pool=pool) == 5
            raise RuntimeError("the surrounding work failed")

    assert callbacks == []
    assert queue_reader(pool) == []
    assert Task.all_teams.filter(run=run, state=TASK_QUEUED).count() == 5
    assert not TaskAttempt.all_teams.filter(task__run=run).exists()


def test_an_unreachable_broker_leaves_dispatched_tasks_for_the_reconciler(
    team, pool, control_broker, tmp_path, django_capture_on_commit_callbacks
):
    from cellar_server.celery import app

    run = make_run(version_for(team))
    add_tasks(run, "square", 3, pool=pool)
    working = app.conf.broker_url
    app.conf.broker_url = f"redis+socket://{tmp_path / 'nothing-here.sock'}"
    reset_publisher_pools()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert dispatch_pool(pool=pool) == 3  # the publish failure is logged, not raised
    finally:
        app.conf.broker_url = working
    assert Task.all_teams.filter(run=run, state=TASK_DISPATCHED).count() == 3


def test_only_ready_work_of_live_runs_is_dispatched(team, pool, queue_reader, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    version = version_for(team)
    live, cancelling, failed = make_run(version), make_run(version, cancel_requested=True), make_run(version)
    failed.state = "failed"
    failed.save(update_fields=["state"])
    add_tasks(live, "square", 2, pool=pool)
    add_tasks(live, "make", 1, pool=pool, not_before=timezone.now() + timedelta(minutes=5))  # backing off
    add_tasks(cancelling, "square", 2, pool=pool)
    add_tasks(failed, "square", 2, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_all() == 2

    messages = queue_reader(pool)
    assert {(m["run"], m["step"]["name"]) for m in messages} == {(live.pk, "square")}
    assert sum(len(m["tasks"]) for m in messages) == 2


def test_nothing_ready_sends_nothing(pool, control_broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert dispatch_pool(pool=pool) == 0
    assert callbacks == []
    assert redis.Redis.from_url(control_broker).llen(pool_queue(pool)) == 0


def test_a_step_tagged_concurrency_keeps_at_most_n_tasks_in_flight_per_run(
    team, pool, settings, queue_reader, django_capture_on_commit_callbacks
):
    from tests.pipelines.engine.conftest import fanout_notebook

    settings.CELLAR_ENGINE_POOL_WORKERS = 4
    team.max_concurrent_cpu_tasks = 10_000
    team.save(update_fields=["max_concurrent_cpu_tasks"])
    limited = make_run(version_for(team, fanout_notebook(square_tags=("concurrency:3",)), name="limited"))
    free = make_run(version_for(team))
    add_tasks(limited, "square", 50, pool=pool)
    add_tasks(free, "square", 20, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        dispatch_pool(pool=pool)
    in_flight = Task.all_teams.filter(state=TASK_DISPATCHED)
    # the limited step holds 3 tasks in flight; the dispatcher moved on to the other run's step
    assert in_flight.filter(run=limited).count() == 3
    assert in_flight.filter(run=free).count() == 20

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=pool) == 0  # still 3 in flight: nothing more may go
    Task.all_teams.filter(run=limited, state=TASK_DISPATCHED).update(state="succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_pool(pool=pool)
    assert Task.all_teams.filter(run=limited, state=TASK_DISPATCHED).count() == 3
