"""Several control workers dispatching at once (threads with their own connections): no task is
ever leased twice, every lease travels in exactly one message, and windows and team quotas hold.
PostgreSQL: an advisory lock per resource kind and FOR UPDATE SKIP LOCKED; SQLite: IMMEDIATE
transactions. `make test` runs these on both."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connection, transaction

from cellar_server.pipelines.engine.dispatch import LEASE_PREFIX, dispatch_pool
from cellar_server.pipelines.models import TASK_DISPATCHED, TASK_IN_FLIGHT, TASK_SUCCEEDED, Task, TaskAttempt
from cellar_server.teams.models import Team
from tests.pipelines.engine import dispatch_fixtures as fx
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, version_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_databases]
control_broker, queue_reader = fx.control_broker, fx.queue_reader  # fixtures

QUOTA = 3  # worker slots (messages in flight) per team, over both pools
RESULTS = 10  # messages the finisher completes before the dispatchers may stop


@pytest.fixture
def pools(settings) -> list[str]:
    names = [f"c{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:8]}"]
    settings.CELLAR_POOLS = json.dumps({"cpu": {"cpu": 1}, **{n: {"cpu": 1} for n in names}})
    settings.CELLAR_ENGINE_POOL_WORKERS = 2
    settings.CELLAR_ENGINE_MAX_BATCH = 40  # a window of 2 x 2 x 40 = 160 tasks per pool
    settings.CELLAR_ENGINE_PROBE_BATCH = 40  # tasks here never run: no measured time to size on
    return names


def _in_threads(*targets) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def run(target) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


def test_concurrent_dispatchers_never_lease_a_task_twice(pools, control_broker, queue_reader):
    teams = [Team.objects.create(slug=f"team-{i}", name=f"Team {i}", max_concurrent_cpu_tasks=QUOTA) for i in (1, 2)]
    for team in teams:
        run = make_run(version_for(team))
        for pool, step in zip(pools, ("square", "plus"), strict=True):
            add_tasks(run, step, 1500, pool=pool)
    done = threading.Event()
    finished = Counter()  # messages the finisher has committed as done
    deadline = time.monotonic() + 120

    def dispatcher(order: list[str]):
        # Rounds go on until results have freed slots RESULTS times, not for a fixed count: on
        # SQLite a writer waiting for the lock polls (busy timeout) instead of queueing, so three
        # dispatchers 10 ms apart could keep the finisher out of every one of a fixed number of
        # rounds, and then only the first fill was leased (2 x QUOTA x 40 = 240 tasks).
        def loop() -> None:
            rounds = 0
            while time.monotonic() < deadline:
                seen = finished["messages"]
                for pool in order:
                    dispatch_pool(pool=pool)
                rounds += 1
                if rounds >= 25 and seen >= RESULTS:
                    return
                time.sleep(0.01)  # let the finisher in (SQLite serializes the writers)

        return loop

    def finisher() -> None:
        # Results arriving meanwhile: in-flight tasks finish, so dispatching goes on for many rounds.
        while not done.is_set():
            with transaction.atomic():
                # A whole message at a time: quotas count messages (worker slots), so a message
                # only frees its slot once every task of it is done.
                oldest = Task.all_teams.filter(state=TASK_DISPATCHED).order_by("id").values_list("lease", flat=True)
                prefix = next(iter(oldest[:1]), None)
                if prefix:
                    Task.all_teams.filter(lease__startswith=prefix[:LEASE_PREFIX], state=TASK_DISPATCHED).update(
                        state=TASK_SUCCEEDED
                    )
            if prefix:
                finished["messages"] += 1  # counted once committed: a dispatcher that sees it can refill
            else:
                time.sleep(0.001)  # nothing dispatched yet: do not hold the dispatchers off the lock

    def dispatchers_then_stop(order):
        loop = dispatcher(order)

        def run() -> None:
            try:
                loop()
            finally:
                done.set()

        return run

    errors = _in_threads(dispatcher(pools), dispatcher(pools[::-1]), dispatchers_then_stop(pools), finisher)
    assert errors == []
    assert finished["messages"] >= RESULTS, f"results freed {finished['messages']} slots in 120 s"

    leased = Task.all_teams.exclude(lease="")
    assert set(leased.values_list("attempt", flat=True)) == {1}  # nobody leased a task twice
    attempts = TaskAttempt.all_teams.all()
    assert attempts.count() == leased.count()
    assert Counter(attempts.values_list("task_id", flat=True)).most_common(1)[0][1] == 1
    # Every slot a result freed was filled again: each dispatcher's last round began after RESULTS
    # messages were done, and a round over both pools refills both teams' quotas (the window has
    # room for more messages than the quotas hold), so the messages are at least those done plus
    # a full set of slots.
    messages = {lease[:LEASE_PREFIX] for lease in leased.values_list("lease", flat=True)}
    assert len(messages) >= RESULTS + 2 * QUOTA
    # every lease travelled in exactly one message, in the task's own pool
    published = Counter()
    for pool in pools:
        for message in queue_reader(pool):
            for item in message["tasks"]:
                published[item["lease"]] += 1
                assert Task.all_teams.get(pk=item["task"]).pool == pool
    assert published == Counter(dict.fromkeys(leased.values_list("lease", flat=True), 1))
    # what is still in flight respects the windows and the quotas (the finisher only lowers it)
    in_flight = Task.all_teams.filter(state__in=TASK_IN_FLIGHT)
    for pool in pools:
        assert in_flight.filter(pool=pool).count() <= 160
    for team in teams:
        slots = {lease[:LEASE_PREFIX] for lease in in_flight.filter(team=team).values_list("lease", flat=True)}
        assert len(slots) <= QUOTA


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only")
def test_rows_locked_by_another_transaction_are_passed_over_not_waited_for(pools, control_broker):
    team = Team.objects.create(slug="locks", name="Locks", max_concurrent_cpu_tasks=1000)
    run = make_run(version_for(team))
    tasks = add_tasks(run, "square", 10, pool=pools[0])
    held, release = threading.Event(), threading.Event()

    def claim_in_progress() -> None:
        # Another transaction (a claim, a result) holds the three oldest rows.
        with transaction.atomic():
            list(Task.all_teams.select_for_update().filter(pk__in=[t.pk for t in tasks[:3]]))
            held.set()
            release.wait(timeout=60)

    dispatched: list[int] = []

    def dispatch() -> None:
        held.wait(timeout=60)
        try:
            dispatched.append(dispatch_pool(pool=pools[0]))
        finally:
            release.set()

    assert _in_threads(claim_in_progress, dispatch) == []
    assert dispatched == [7]
    states = dict(Task.all_teams.filter(run=run).values_list("id", "state"))
    assert [states[t.pk] for t in tasks[:3]] == ["queued"] * 3
    assert all(states[t.pk] == TASK_DISPATCHED for t in tasks[3:])
