"""Races the state machine must win on both databases (PostgreSQL: row locks, READ COMMITTED;
SQLite: one IMMEDIATE writer at a time): results of one run's branches arriving together create the
join exactly once and count every task; two workers claiming one lease, a result racing the
reconciler's requeue, runs started together. Each thread has its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from cellar_server.pipelines.engine.results import task_requeue
from cellar_server.pipelines.models import PipelineRun, Task
from cellar_server.tracking.models import Experiment
from tests.factories import TeamFactory, UserFactory, add_member
from tests.pipelines.engine.conftest import FakeWorker, fanout_notebook, fresh, linear_notebook, states, task_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_databases]


def race(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls at once, one thread each; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    out: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait()
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            out[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return out


@pytest.fixture
def setup(broker, store):
    """A team with an editor, and helpers to promote and start runs (outside the `team` fixtures,
    which belong to the transactional-free tests)."""
    from cellar_server.pipelines import services
    from cellar_server.pipelines.engine.runs import run_create
    from cellar_server.teams.actors import Actor
    from cellar_server.teams.roles import scopes_for

    team = TeamFactory(slug="race", name="Race")
    team.max_concurrent_cpu_tasks = 1000
    team.save(update_fields=["max_concurrent_cpu_tasks"])
    editor = add_member(team, UserFactory(username="race-editor"), "editor")
    actor = Actor(user=editor)

    def promote(notebook, name):
        return services.pipeline_version_create(
            team=team, pipeline_name=name, notebook=notebook, actor=actor, scopes=scopes_for("admin")
        ).version

    def start(version, parameters=None, **kw):
        return run_create(
            team=team, pipeline=version.pipeline, version=version, parameters=parameters, actor=actor, **kw
        )

    return team, promote, start, FakeWorker(store, name="w1")


def test_branch_results_arriving_together_create_the_join_once(setup, store):
    _team, promote, start, worker = setup
    run = start(promote(fanout_notebook(), "fan"), {"n": 8})
    (make,) = worker.take(run)
    worker.claim([make])
    worker.report([worker.execute(make)])
    (expand,) = worker.take(run)
    worker.claim([expand])
    worker.report([worker.execute(expand)])
    squares = worker.take(run)
    worker.claim(squares)
    worker.report([worker.execute(a) for a in squares])
    pluses = worker.take(run)
    assert len(pluses) == 8
    worker.claim(pluses)
    reports = [worker.execute(a) for a in pluses]
    agents = [FakeWorker(store, name="w1") for _ in reports]
    answers = race([lambda r=r, a=a: a.report([r]) for r, a in zip(reports, agents, strict=True)])
    assert all(isinstance(answer, dict) and len(answer["accepted"]) == 1 for answer in answers), answers
    assert Task.all_teams.filter(run_id=run.pk, step="total").count() == 1
    run = fresh(run)
    assert (run.tasks_done, run.tasks_total) == (1 + 1 + 8 + 8, 1 + 1 + 8 + 8 + 1)
    run = worker.drain(run)
    assert run.state == "succeeded"
    assert worker.load(task_of(run, "total").outputs["sqs"], team="race") == [i * i for i in range(8)]


def test_two_workers_claiming_one_lease_one_wins(setup, store):
    _team, promote, start, worker = setup
    run = start(promote(linear_notebook(), "claims"))
    (assigned,) = worker.take(run)
    agents = [FakeWorker(store, name=f"agent-{i}") for i in range(4)]
    answers = race([lambda a=a: a.claim([assigned]) for a in agents])
    winners = [a.name for a, answer in zip(agents, answers, strict=True) if answer["claimed"]]
    assert len(winners) == 1, answers
    assert sorted(answer["refused"].get(str(assigned.item.task), "") for answer in answers) == [
        "",
        "claimed",
        "claimed",
        "claimed",
    ]
    task = task_of(run, "load")
    assert task.state == "running" and task.worker == winners[0]
    assert list(task.attempts.values_list("state", "worker")) == [("running", winners[0])]


@pytest.mark.parametrize("attempt", range(3))
def test_a_result_racing_the_requeue_of_its_lease_lands_once(setup, attempt):
    _team, promote, start, worker = setup
    run = start(promote(linear_notebook(), f"lost-{attempt}"))
    (assigned,) = worker.take(run)
    worker.claim([assigned])
    task = task_of(run, "load")
    Task.all_teams.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    report = worker.succeed(assigned, x=21)
    answer, requeued = race(
        [lambda: worker.report([report]), lambda: task_requeue(task=task, reason="lost", consume_retry=False)]
    )
    task = task_of(run, "load")
    attempts = list(task.attempts.values_list("state", flat=True))
    if answer["accepted"]:
        assert requeued == "succeeded" and task.state == "succeeded" and attempts == ["succeeded"]
        assert "double" in states(run)
    else:
        assert answer["refused"] == {str(task.pk): "stale"}
        assert requeued == "queued" and task.state == "queued" and attempts == ["lost"]
        assert "double" not in states(run)
    assert fresh(run).tasks_done == (1 if answer["accepted"] else 0)


def test_runs_started_together_get_distinct_numbers_and_one_experiment(setup):
    team, promote, start, _worker = setup
    version = promote(linear_notebook(), "together")
    runs = race([lambda: start(version) for _ in range(4)])
    assert all(isinstance(r, PipelineRun) for r in runs), runs
    assert sorted(r.number for r in runs) == [1, 2, 3, 4]
    assert Experiment.all_teams.filter(team=team, name="pipeline:together").count() == 1
    assert len({r.tracking_run for r in runs}) == 4
