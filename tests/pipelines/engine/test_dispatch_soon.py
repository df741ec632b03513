"""dispatch_soon: a burst of results enqueues a bounded number of `cellar.engine.dispatch` tasks
(debounced through a Redis key the dispatch task clears as it starts), only on commit, and
never fails its caller when the broker is down. Read back from the real `control` queue."""

from __future__ import annotations

import json

import pytest
import redis
from django.db import transaction

from cellar_server.pipelines import tasks
from cellar_server.pipelines.engine.dispatch import DISPATCH_TASK, PENDING_KEY, dispatch_soon
from cellar_server.pipelines.models import TASK_DISPATCHED, Task
from tests.pipelines.engine import dispatch_fixtures as fx
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, reset_publisher_pools, version_for

pytestmark = pytest.mark.django_db
pool, control_broker = fx.pool, fx.control_broker  # fixtures
CONTROL = "control"


@pytest.fixture
def control_queue(control_broker, settings):
    client = redis.Redis.from_url(control_broker)
    client.delete(CONTROL, PENDING_KEY)
    yield client
    client.delete(CONTROL, PENDING_KEY)
    client.close()


def _requests(client) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(CONTROL, 0, -1)]


def test_a_burst_of_results_enqueues_one_dispatch_until_it_starts(
    control_queue, team, pool, django_capture_on_commit_callbacks
):
    """Without any debounce wait (the default) the burst still makes one request."""
    # each result handler asks once its transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(200):
            dispatch_soon()
    [request] = _requests(control_queue)
    assert request["headers"]["task"] == DISPATCH_TASK
    assert request["headers"]["eta"] is None  # no wait by default: the Redis key coalesces the burst

    # The dispatch starts (as the control worker would run it): requests from now on enqueue anew.
    run = make_run(version_for(team))
    add_tasks(run, "square", 3, pool=pool)
    tasks.engine_dispatch()
    assert Task.all_teams.filter(run=run, state=TASK_DISPATCHED).count() == 3
    assert not control_queue.exists(PENDING_KEY)

    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(200):
            dispatch_soon()
    assert len(_requests(control_queue)) == 2


def test_a_request_waits_for_the_commit(control_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            dispatch_soon()
            raise RuntimeError("rolled back")
    assert _requests(control_queue) == []

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            dispatch_soon()
            assert _requests(control_queue) == []  # not before the commit
    assert len(_requests(control_queue)) == 1


def test_a_broker_that_is_down_does_not_fail_the_caller(control_broker, tmp_path, django_capture_on_commit_callbacks):
    from cellar_server.celery import app

    working = app.conf.broker_url
    app.conf.broker_url = f"redis+socket://{tmp_path / 'gone.sock'}"
    reset_publisher_pools()
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            dispatch_soon()  # logged; the reconciler's beat dispatches instead
        assert len(callbacks) == 1
    finally:
        app.conf.broker_url = working


def test_an_operator_debounce_delays_the_dispatch(control_queue, settings, django_capture_on_commit_callbacks):
    settings.CELLAR_ENGINE_DISPATCH_DEBOUNCE = 0.2
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_soon()
    [request] = _requests(control_queue)
    assert request["headers"]["eta"] is not None
