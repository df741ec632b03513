"""Message sizes follow the step's measured task time, and the window counts messages: a probe
while a step's time is unknown, then engine_settings.batch_seconds() worth of tasks per message,
and never more than workers x window factor messages of a pool in flight."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cellar_server.pipelines.engine.dispatch import dispatch_pool
from cellar_server.pipelines.models import TASK_DISPATCHED, TASK_SUCCEEDED, Task
from tests.pipelines.engine import dispatch_fixtures as fx
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, version_for

pytestmark = pytest.mark.django_db
pool, control_broker, queue_reader = fx.pool, fx.control_broker, fx.queue_reader  # fixtures


@pytest.fixture
def sized(settings, pool, team):
    settings.CELLAR_ENGINE_PROBE_BATCH = 10
    settings.CELLAR_ENGINE_BATCH_SECONDS = 1.0
    settings.CELLAR_ENGINE_POOL_WORKERS = 2  # a window of 4 messages
    team.max_concurrent_cpu_tasks = 1000
    team.save()
    return pool


def _finish(run, step: str, count: int, seconds: float) -> None:
    """`count` tasks of the step finished, each having taken `seconds`."""
    ended = timezone.now()
    for task in add_tasks(run, step, count, pool="cpu", state=TASK_SUCCEEDED, first_index=10_000):
        Task.all_teams.filter(pk=task.pk).update(started_at=ended - timedelta(seconds=seconds), ended_at=ended)


def _sizes(queue_reader, pool) -> list[int]:
    return [len(m["tasks"]) for m in queue_reader(pool)]


def test_a_step_whose_task_time_is_unknown_goes_in_probe_sized_messages(
    team, sized, queue_reader, django_capture_on_commit_callbacks
):
    run = make_run(version_for(team))
    add_tasks(run, "square", 1000, pool=sized)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=sized) == 40
    assert _sizes(queue_reader, sized) == [10, 10, 10, 10]


@pytest.mark.parametrize(
    ("seconds", "size"),
    [pytest.param(0.001, 200, id="trivial-tasks-fill-the-largest-message"), pytest.param(0.05, 20, id="50ms-tasks")],
)
def test_messages_hold_a_second_of_the_steps_measured_task_time(
    team, sized, queue_reader, django_capture_on_commit_callbacks, seconds, size
):
    run = make_run(version_for(team))
    _finish(run, "square", 5, seconds)
    add_tasks(run, "square", 1000, pool=sized)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=sized) == 4 * size
    assert _sizes(queue_reader, sized) == [size] * 4


def test_the_window_counts_messages_so_a_teams_queue_stays_short(team, other_team, sized):
    run = make_run(version_for(team))
    _finish(run, "square", 5, 0.05)
    add_tasks(run, "square", 1000, pool=sized)
    assert dispatch_pool(pool=sized) == 80  # 4 messages of 20, though 800 tasks would fit
    other = make_run(version_for(other_team))
    add_tasks(other, "make", 1, pool=sized)
    assert dispatch_pool(pool=sized) == 0  # the window is full: nothing more goes to the broker
    # one of team's messages finishes: the freed slot goes to the team with less in flight
    first = Task.all_teams.filter(run=run, state=TASK_DISPATCHED).order_by("id").first()
    Task.all_teams.filter(lease__startswith=first.lease[:12]).update(state=TASK_SUCCEEDED)
    assert dispatch_pool(pool=sized) == 1
    assert Task.all_teams.get(run=other).state == TASK_DISPATCHED


def test_a_new_run_sizes_on_the_same_versions_last_run(team, sized, queue_reader, django_capture_on_commit_callbacks):
    version = version_for(team)
    _finish(make_run(version), "square", 5, 0.25)  # an earlier run of the version: 250 ms per task
    run = make_run(version)
    add_tasks(run, "square", 1000, pool=sized)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=sized) == 16
    assert _sizes(queue_reader, sized) == [4] * 4  # 1 s / 250 ms, not the probe's 10
