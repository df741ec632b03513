"""Fairness and quotas: a team's huge fan-out never starves another team's single task, teams
take turns when the window is scarce, and no team exceeds its concurrent-task quota (counted
in worker slots, that is messages in flight, over every pool of the same kind: a micro-batch
runs its tasks one at a time, so it takes one slot)."""

from __future__ import annotations

import json

import pytest

from cellar_server.pipelines.engine.dispatch import dispatch_pool
from cellar_server.pipelines.models import TASK_DISPATCHED, TASK_QUEUED, TASK_RUNNING, TASK_SUCCEEDED, Task
from tests.pipelines.engine import dispatch_fixtures as fx
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, version_for

pytestmark = pytest.mark.django_db
pool, control_broker, queue_reader = fx.pool, fx.control_broker, fx.queue_reader  # fixtures


def _quota(team, cpu: int | None = None, gpu: int | None = None) -> None:
    if cpu is not None:
        team.max_concurrent_cpu_tasks = cpu
    if gpu is not None:
        team.max_concurrent_gpu_tasks = gpu
    team.save()


def _dispatched(team, pool_name: str | None = None) -> int:
    tasks = Task.all_teams.filter(team=team, state=TASK_DISPATCHED)
    return tasks.filter(pool=pool_name).count() if pool_name else tasks.count()


def test_a_huge_fan_out_does_not_starve_another_teams_single_task(team, other_team, pool):
    _quota(team, cpu=100_000)
    big = make_run(version_for(team))
    add_tasks(big, "square", 20_000, pool=pool)
    small = make_run(version_for(other_team))
    [single] = add_tasks(small, "make", 1, pool=pool)

    dispatched = dispatch_pool(pool=pool)  # the first dispatch round

    single.refresh_from_db()
    assert single.state == TASK_DISPATCHED and single.attempt == 1
    # the big team got the rest of the window (1 worker x 2 messages): one message of 200, not
    # its whole backlog, and not a second message queued ahead of the next team's work
    assert dispatched == 201
    assert _dispatched(team) == 200
    assert Task.all_teams.filter(run=big, state=TASK_QUEUED).count() == 20_000 - 200


def test_when_room_is_scarce_the_team_with_least_in_flight_goes_first(team, other_team, pool, settings):
    settings.CELLAR_ENGINE_MAX_BATCH = 1  # a window of 2 tasks
    first = make_run(version_for(team))
    add_tasks(first, "square", 10, pool=pool)
    second = make_run(version_for(other_team))
    add_tasks(second, "square", 10, pool=pool)

    assert dispatch_pool(pool=pool) == 2
    assert (_dispatched(team), _dispatched(other_team)) == (1, 1)  # one each, not two of the oldest

    # `team` finishes its task: the freed slot goes to... `team`, which now has fewer in flight.
    Task.all_teams.filter(team=team, state=TASK_DISPATCHED).update(state=TASK_SUCCEEDED)
    assert dispatch_pool(pool=pool) == 1
    assert (_dispatched(team), _dispatched(other_team)) == (1, 1)

    # Both finish: turns alternate, so over many rounds both progress equally.
    for _ in range(4):
        Task.all_teams.filter(state=TASK_DISPATCHED).update(state=TASK_SUCCEEDED)
        assert dispatch_pool(pool=pool) == 2
    done = {t: Task.all_teams.filter(team=t, state=TASK_SUCCEEDED).count() for t in (team, other_team)}
    assert done == {team: 5, other_team: 4}


def test_a_team_never_exceeds_its_cpu_quota_counted_over_dispatched_and_running(team, other_team, pool, settings):
    settings.CELLAR_ENGINE_MAX_BATCH = 1  # one task per message: slots and tasks are the same count
    settings.CELLAR_ENGINE_POOL_WORKERS = 10  # a window of 20: the quota, not the window, limits
    _quota(team, cpu=3)
    run = make_run(version_for(team))
    add_tasks(run, "square", 10, pool=pool)
    other = make_run(version_for(other_team))
    add_tasks(other, "square", 5, pool=pool)

    dispatch_pool(pool=pool)
    assert _dispatched(team) == 3
    assert _dispatched(other_team) == 5  # its own quota (the default) is not touched by `team`'s

    # running tasks count too: a claim changes nothing
    Task.all_teams.filter(team=team, state=TASK_DISPATCHED).update(state=TASK_RUNNING)
    assert dispatch_pool(pool=pool) == 0

    # one finishes: exactly one more goes
    one = Task.all_teams.filter(team=team, state=TASK_RUNNING).first()
    Task.all_teams.filter(pk=one.pk).update(state=TASK_SUCCEEDED)
    assert dispatch_pool(pool=pool) == 1
    in_flight = Task.all_teams.filter(team=team, state__in=(TASK_DISPATCHED, TASK_RUNNING)).count()
    assert in_flight == 3


def test_the_quota_spans_every_pool_of_the_same_kind(team, pool, settings):
    settings.CELLAR_POOLS = json.dumps({"cpu": {"cpu": 1}, pool: {"cpu": 1}, "bigmem": {"cpu": 4}})
    settings.CELLAR_ENGINE_MAX_BATCH = 1
    _quota(team, cpu=4)
    run = make_run(version_for(team))
    for running in add_tasks(run, "square", 3, pool="bigmem", state=TASK_RUNNING):
        Task.all_teams.filter(pk=running.pk).update(lease=f"{running.pk:012d}{running.pk}")  # 3 messages
    add_tasks(run, "plus", 5, pool=pool)

    assert dispatch_pool(pool=pool) == 1


def test_gpu_pools_use_the_gpu_quota(team, settings):
    settings.CELLAR_POOLS = json.dumps({"cpu": {"cpu": 1}, "gpu": {"cpu": 4, "gpu": 1}})
    settings.CELLAR_ENGINE_MAX_BATCH = 1
    _quota(team, cpu=1, gpu=2)
    run = make_run(version_for(team))
    add_tasks(run, "square", 6, pool="gpu")
    add_tasks(run, "make", 1, pool="cpu", state=TASK_RUNNING)  # the cpu quota is full: irrelevant here

    assert dispatch_pool(pool="gpu") == 2
    assert _dispatched(team, "gpu") == 2


def test_a_quota_bound_backlog_is_spread_over_the_workers(
    team, pool, settings, queue_reader, django_capture_on_commit_callbacks
):
    settings.CELLAR_ENGINE_POOL_WORKERS = 4
    _quota(team, cpu=16)
    run = make_run(version_for(team))
    add_tasks(run, "square", 1000, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=pool) == 1000

    # 16 slots, so 16 messages may go, but 8 (2 x 4 workers) already give every worker work:
    # 1000 / 8 = 125 per message, not 16 messages of 63 or one message of 200 while three wait
    assert [len(m["tasks"]) for m in queue_reader(pool)] == [125] * 8


def test_a_micro_batch_takes_one_slot_of_the_quota_however_many_tasks_it_holds(
    team, pool, settings, queue_reader, django_capture_on_commit_callbacks
):
    _quota(team, cpu=2)
    run = make_run(version_for(team))
    add_tasks(run, "square", 1000, pool=pool)

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_pool(pool=pool) == 400  # two slots: two messages of the largest size
    messages = queue_reader(pool)
    assert [len(m["tasks"]) for m in messages] == [200, 200]
    assert dispatch_pool(pool=pool) == 0  # both slots taken (and the window full)

    # the agent claims one message (running) and finishes the other: one slot frees, one more goes
    done = [t["task"] for t in messages[0]["tasks"]]
    Task.all_teams.filter(pk__in=done).update(state=TASK_SUCCEEDED)
    Task.all_teams.filter(pk__in=[t["task"] for t in messages[1]["tasks"]]).update(state=TASK_RUNNING)
    assert dispatch_pool(pool=pool) == 200
    leases = Task.all_teams.filter(team=team, state__in=(TASK_DISPATCHED, TASK_RUNNING)).values_list("lease", flat=True)
    assert len({lease[:12] for lease in leases}) == 2
