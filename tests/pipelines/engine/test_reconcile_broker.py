"""The reconciler and lost messages, against the real Redis: a dispatched task nobody claimed
within the claim grace is dispatched again with a new lease when its message is gone (Redis
restarted without persistence), and left alone while its message still waits in `pool.<name>`
or sits delivered and unacknowledged."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from cellar_server.pipelines.engine import tokens
from cellar_server.pipelines.engine.dispatch import dispatch_pool, pool_queue
from cellar_server.pipelines.engine.reconcile import UNACKED_KEY, leases_in_broker, reconcile
from cellar_server.pipelines.models import TASK_DISPATCHED, Task, TaskAttempt
from tests.pipelines.engine import dispatch_fixtures as fx
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, version_for

pytestmark = pytest.mark.django_db
pool, control_broker, queue_reader = fx.pool, fx.control_broker, fx.queue_reader  # fixtures


@pytest.fixture
def client(control_broker):
    connection = redis.Redis.from_url(control_broker)
    connection.delete(UNACKED_KEY)
    yield connection
    connection.delete(UNACKED_KEY)
    connection.close()


@pytest.fixture
def dispatched(team, pool, control_broker, django_capture_on_commit_callbacks):
    """Three tasks of one step, dispatched and published (two messages: 1 worker, ceil(3 / 2) a message)."""
    run = make_run(version_for(team))
    add_tasks(run, "square", 3, pool=pool)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=pool) == 3
    return run


def _past_grace(run) -> None:
    Task.all_teams.filter(run=run).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def _leases(run) -> dict[int, str]:
    return dict(Task.all_teams.filter(run=run).values_list("id", "lease"))


def test_a_message_lost_with_redis_is_dispatched_again_with_new_leases(
    dispatched, pool, client, queue_reader, django_capture_on_commit_callbacks
):
    before = _leases(dispatched)
    client.delete(pool_queue(pool))  # Redis restarted without persistence: the message is gone
    _past_grace(dispatched)

    with django_capture_on_commit_callbacks(execute=True):
        counts = reconcile()

    assert counts["unclaimed_requeued"] == 3 and counts["dispatched"] == 3
    after = _leases(dispatched)
    assert set(after) == set(before) and all(after[t] != before[t] for t in before)
    for task in Task.all_teams.filter(run=dispatched):
        assert (task.state, task.attempt, task.lost_attempts) == (TASK_DISPATCHED, 2, 1)
        assert task.lease_expires_at > timezone.now()
    old = TaskAttempt.all_teams.filter(lease__in=before.values())
    assert set(old.values_list("state", flat=True)) == {"lost"}

    # the new messages are in Redis and carry the new leases, with tokens for them
    items = [item for message in queue_reader(pool) for item in message["tasks"]]
    assert {item["task"]: item["lease"] for item in items} == after
    for item in items:
        tokens.token_verify(item["token"], task_id=item["task"], lease=item["lease"])


def test_a_message_still_waiting_in_the_queue_is_only_late(dispatched, pool, client, queue_reader):
    before = _leases(dispatched)
    _past_grace(dispatched)

    counts = reconcile()

    assert (counts["unclaimed_requeued"], counts["unclaimed_waiting"]) == (0, 3)
    assert _leases(dispatched) == before
    for task in Task.all_teams.filter(run=dispatched):
        assert task.state == TASK_DISPATCHED and task.attempt == 1
        assert task.lease_expires_at > timezone.now()  # looked at again one grace from now
    assert sum(len(m["tasks"]) for m in queue_reader(pool)) == 3  # nothing sent twice


def test_a_message_delivered_and_unacknowledged_is_only_late(dispatched, pool, client):
    # What kombu does when an agent takes a message (acks late): list -> the `unacked` hash.
    raw = client.rpop(pool_queue(pool))
    client.hset(UNACKED_KEY, "delivery-tag-1", json.dumps([json.loads(raw), "", pool_queue(pool)]))
    assert client.llen(pool_queue(pool)) == 1  # the other message still waits
    _past_grace(dispatched)

    counts = reconcile()

    assert (counts["unclaimed_requeued"], counts["unclaimed_waiting"]) == (0, 3)
    assert {t.attempt for t in Task.all_teams.filter(run=dispatched)} == {1}


def test_leases_are_read_from_both_places_and_foreign_messages_ignored(dispatched, pool, client):
    client.lpush(pool_queue(pool), json.dumps({"headers": {"task": "something.else"}, "body": "e30="}))
    client.lpush(pool_queue(pool), b"not json at all")
    assert leases_in_broker([pool]) == set(_leases(dispatched).values())


def test_an_uninspectable_broker_counts_unclaimed_tasks_as_lost(team, pool, settings, tmp_path):
    from cellar_server.celery import app

    run = make_run(version_for(team))
    add_tasks(run, "square", 2, pool=pool)
    dispatch_pool(pool=pool)  # not committed in this test: never published
    _past_grace(run)
    working = app.conf.broker_url
    app.conf.broker_url = f"redis+socket://{tmp_path / 'down.sock'}"
    try:
        assert leases_in_broker([pool]) is None
        assert reconcile()["unclaimed_requeued"] == 2  # fencing keeps a late duplicate harmless
    finally:
        app.conf.broker_url = working
    assert {t.attempt for t in Task.all_teams.filter(run=run)} == {2}
