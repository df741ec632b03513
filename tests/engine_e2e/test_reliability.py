"""The engine's reliability promises (issue 5, "Reliability"), with real processes: the web side
(live_server), a control worker with its beat, pool agents and a Redis of this module's own,
which a test may kill (tests/engine_e2e/conftest.py `tuned_stack`).

Cases: Redis killed without persistence mid-run, the control worker killed and restarted, a
step longer than the broker's visibility timeout, the result of an attempt presumed lost, two
teams sharing the pool, an artifact store that refuses a step's output, and `cellar.log_metric`
inside a step. (SIGKILL of an agent mid-step is in test_engine_e2e.py.)

The control worker runs with CELLAR_ENGINE_CLAIM_GRACE=5: a message lost with Redis is
re-dispatched 5 s after its dispatch instead of 120 s. Every case checks outcomes exactly: the
run's state, one succeeded attempt per task, and, for steps that append a line to a file each
time they execute, how many times the code ran.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.execute import ArtifactRef, load_artifact
from cellar_server.pipelines.models import RUN_TERMINAL, PipelineRun, Task, TaskAttempt
from cellar_server.teams.actors import Actor
from cellar_server.teams.roles import scopes_for
from cellar_server.tracking.models import Metric
from tests.engine_e2e.conftest import TunedStack, wait_for
from tests.factories import TeamFactory, UserFactory, add_member
from tests.pipelines.engine.conftest import build_notebook, cell

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


# --- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture
def acme_user(team, members):
    return members["admin"]


@pytest.fixture
def rival_user(other_team):
    return add_member(other_team, UserFactory(username="rival-admin"), "admin")


def start(team, user, notebook: dict, name: str, **parameters) -> PipelineRun:
    """Promote `notebook` as pipeline `name` of `team` and start a run of it (as the web API does)."""
    from cellar_server.pipelines import services
    from cellar_server.pipelines.engine.runs import run_create

    actor = Actor(user=user)
    version = services.pipeline_version_create(
        team=team, pipeline_name=name, notebook=notebook, actor=actor, scopes=scopes_for("admin")
    ).version
    return run_create(team=team, pipeline=version.pipeline, version=version, parameters=parameters, actor=actor)


def fresh(run: PipelineRun) -> PipelineRun:
    return PipelineRun.all_teams.get(pk=run.pk)


def finished(run: PipelineRun, stack: TunedStack, timeout: float = 150) -> PipelineRun:
    return wait_for(
        lambda: (r := fresh(run)).state in RUN_TERMINAL and r, timeout=timeout, what=f"run {run.pk} to end", stack=stack
    )


def fanout(ran: Path, n: int, sleep: float) -> dict:
    """make -> work (foreach over n items: sleeps, then appends its item to `ran`) -> total (join)."""
    work = (
        "import pathlib, time\n"
        f"time.sleep({sleep})\n"
        f"with pathlib.Path({str(ran)!r}).open('a') as handle:\n"
        "    handle.write(f'{item}\\n')\n"
        "sq = item * item"
    )
    return build_notebook(
        cell(f"n = {n}", "parameters"),
        cell("items = list(range(n))", "step:make"),
        cell(work, "step:work", "foreach:items"),
        cell("total = sum(sq)", "step:total", "join"),
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def assert_each_task_succeeded_once(run: PipelineRun) -> None:
    tasks = Task.all_teams.filter(run_id=run.pk)
    assert Counter(tasks.values_list("state", flat=True)) == {"succeeded": tasks.count()}
    succeeded = TaskAttempt.all_teams.filter(task__run_id=run.pk, state="succeeded")
    assert Counter(succeeded.values_list("task_id", flat=True)) == {pk: 1 for pk in tasks.values_list("pk", flat=True)}


def assert_ran_once_per_item(ran: Path, n: int) -> None:
    assert sorted(lines(ran), key=int) == [str(i) for i in range(n)]


def in_flight(run: PipelineRun, state: str) -> int:
    return Task.all_teams.filter(run_id=run.pk, step="work", state=state).count()


# --- the cases -------------------------------------------------------------------------------------------


def test_redis_restarted_without_persistence_mid_run_loses_nothing(tuned, team, acme_user, tmp_path):
    """Redis dies (SIGKILL, no persistence) with batches waiting in `pool.cpu`: those messages are
    gone. The reconciler finds their tasks dispatched, unclaimed past the claim grace and absent
    from the broker, and dispatches them again; the batches that were running finish and report."""
    ran = tmp_path / "ran"
    run = start(team, acme_user, fanout(ran, 40, 0.3), "redis-restart")
    queue = redis.Redis.from_url(tuned.redis_url)
    # Two batches running (the agent's two threads), the others waiting in Redis.
    wait_for(
        lambda: lines(ran) and in_flight(run, "running") and queue.llen("pool.cpu") > 0,
        what="batches running and others waiting in the broker",
        stack=tuned,
    )
    tuned.redis.kill()  # what waited in `pool.cpu` is gone
    tuned.redis.start()

    run = finished(run, tuned)
    assert run.state == "succeeded", run.error
    assert_ran_once_per_item(ran, 40)
    assert_each_task_succeeded_once(run)
    # The lost messages' tasks were dispatched again: a lost attempt, then the succeeded one.
    lost = Task.all_teams.filter(run_id=run.pk, lost_attempts__gt=0)
    assert lost.exists()
    for task in lost:
        states = list(TaskAttempt.all_teams.filter(task=task).order_by("number").values_list("state", flat=True))
        assert states[-1] == "succeeded" and set(states[:-1]) == {"lost"}


def test_the_control_worker_killed_and_restarted_mid_run(tuned, team, acme_user, tmp_path):
    """SIGKILL of the control worker and its beat while the fan-out runs; the agent keeps working and
    reporting to the web side meanwhile. Started again, the control worker's reconciler and
    dispatcher pick up where the database says the run is."""
    ran = tmp_path / "ran"
    run = start(team, acme_user, fanout(ran, 30, 0.2), "control-restart")
    wait_for(lambda: lines(ran), what="the fan-out to start", stack=tuned)
    tuned.kill_control()
    # Without a dispatcher, the run cannot end: its join is never dispatched.
    wait_for(lambda: len(lines(ran)) == 30, what="the dispatched branches to finish", stack=tuned)
    assert fresh(run).state == "running"
    tuned.start_control()

    run = finished(run, tuned)
    assert run.state == "succeeded", run.error
    assert_ran_once_per_item(ran, 30)
    assert_each_task_succeeded_once(run)


def test_a_step_longer_than_the_visibility_timeout_runs_once(tuned, team, acme_user, tmp_path):
    """Agents with a 3 s visibility timeout: Redis hands the unacknowledged message out again while
    the step still runs (the second agent restores it as it starts, being idle it takes it); the
    second claim is refused because the first agent holds the lease, and the copy is dropped."""
    ran, release = tmp_path / "ran", tmp_path / "release"
    tuned.stop_agents()
    tuned.extra_env["CELLAR_BROKER_VISIBILITY_TIMEOUT"] = "3"
    first, _ = tuned.add_agent(concurrency=1)
    code = (
        "import pathlib, time\n"
        f"pathlib.Path({str(ran)!r}).open('a').write('ran\\n')\n"
        "deadline = time.monotonic() + 120\n"
        f"while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.2)\n"
        "y = 1"
    )
    notebook = build_notebook(cell(code, "step:long"), cell("z = y + 1", "step:after"))
    run = start(team, acme_user, notebook, "long-step")
    wait_for(lambda: lines(ran), what="the long step to start", stack=tuned)
    time.sleep(4)  # its message has been unacknowledged for longer than the visibility timeout
    second, _ = tuned.add_agent(concurrency=1)
    wait_for(
        lambda: "was not claimed (claimed): dropped" in tuned.output(second),
        what="the redelivered message to be refused",
        stack=tuned,
    )
    release.touch()

    run = finished(run, tuned)
    assert run.state == "succeeded", run.error
    assert lines(ran) == ["ran"]
    assert_each_task_succeeded_once(run)
    long = Task.all_teams.get(run_id=run.pk, step="long")
    assert long.attempt == 1 and long.worker.endswith(f":{tuned.more_agents[0].pid}")
    assert "was not claimed" not in tuned.output(first)


def test_two_teams_sharing_the_pool_both_progress(tuned, team, acme_user, other_team, rival_user, tmp_path):
    """Team acme's 300-element fan-out is under way when team rival starts a small run: the
    dispatcher gives rival its turns, so rival's run ends while acme's is still running."""
    ran = tmp_path / "ran"
    wide = start(team, acme_user, fanout(ran, 300, 0.05), "wide")
    wait_for(lambda: len(lines(ran)) >= 20, what="the wide fan-out to be under way", stack=tuned)
    notebook = build_notebook(cell("x = 1", "step:load"), cell("y = x", "step:use"))
    small = start(other_team, rival_user, notebook, "small")

    small = finished(small, tuned)
    assert small.state == "succeeded", small.error
    assert fresh(wide).state == "running"  # rival did not wait for acme's fan-out to end
    wide = finished(wide, tuned)
    assert wide.state == "succeeded", wide.error
    assert small.ended_at < wide.ended_at
    assert_ran_once_per_item(ran, 300)
    assert_each_task_succeeded_once(wide)
    assert_each_task_succeeded_once(small)


def test_an_output_the_store_cannot_take_fails_the_run_with_the_reason(tuned):
    """A team's data prefix in the artifact store cannot be written (a file where its folder
    should be: even root cannot write under it). The step fails at its outputs with a message
    naming the store and the output; the run fails instead of hanging."""
    sealed = TeamFactory(slug="sealed", name="Sealed")
    user = add_member(sealed, UserFactory(username="sealed-admin"), "admin")
    blocked = tuned.store_dir / "teams" / sealed.slug / "data"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    try:
        # x is larger than INLINE_MAX_BYTES, so it must go to the store (small values travel inline).
        notebook = build_notebook(cell("x = list(range(1000))", "step:make"), cell("y = len(x)", "step:use"))
        run = finished(start(sealed, user, notebook, "unwritable"), tuned)
    finally:
        blocked.unlink()
    assert run.state == "failed"
    assert run.error["step"] == "make"
    message = json.dumps(run.error)
    assert "artifact store" in message and "'x'" in message, run.error
    assert "Not a directory" in message
    assert Task.all_teams.get(run_id=run.pk, step="make").state == "failed"
    assert Task.all_teams.get(run_id=run.pk, step="use").state == "upstream_failed"


def test_log_metric_inside_a_step_lands_in_the_runs_tracking_run(tuned, team, acme_user):
    code = "import cellar\ncellar.log_metric('loss', 0.5, step=1)\nx = 1"
    notebook = build_notebook(cell(code, "step:train"), cell("y = x", "step:after"))
    run = finished(start(team, acme_user, notebook, "tracked"), tuned)
    assert run.state == "succeeded", run.error
    points = Metric.objects.filter(run__run_uuid=run.tracking_run, key="loss")
    assert list(points.values_list("value", "step")) == [(0.5, 1)]


def test_the_result_of_an_attempt_presumed_lost_is_refused(tuned, team, acme_user, settings, tmp_path):
    """An agent whose heartbeats stop reaching the engine (here: it beats every 60 s, leases live
    5 s) while its step still runs: the engine records the attempt lost and another agent runs
    the task again. When the first agent's step ends, its result carries the old lease and is
    refused; the task keeps the second attempt's outputs."""
    settings.CELLAR_ENGINE_LEASE_TTL = 5
    ran, flag, release = tmp_path / "ran", tmp_path / "first", tmp_path / "release"
    code = (
        "import pathlib, time\n"
        f"pathlib.Path({str(ran)!r}).open('a').write('ran\\n')\n"
        f"flag, release = pathlib.Path({str(flag)!r}), pathlib.Path({str(release)!r})\n"
        "y = 'second'\n"
        "if not flag.exists():\n"
        "    flag.touch()\n"
        "    deadline = time.monotonic() + 120\n"
        "    while not release.exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.2)\n"
        "    y = 'first'"
    )
    notebook = build_notebook(cell(code, "step:slow"), cell("print(y + '!')", "step:after"))
    tuned.stop_agents()
    silent, _ = tuned.add_agent(concurrency=1, heartbeat=60)
    run = start(team, acme_user, notebook, "stale-result")
    wait_for(flag.exists, what="the first attempt to start", stack=tuned)
    tuned.add_agent(concurrency=1)
    slow = Task.all_teams.get(run_id=run.pk, step="slow")
    wait_for(
        lambda: TaskAttempt.all_teams.filter(task=slow, state="succeeded").exists(),
        what="the second attempt to succeed",
        stack=tuned,
    )
    release.touch()
    wait_for(
        lambda: f"the engine refused the result of task {slow.pk}: stale" in tuned.output(silent),
        what="the first attempt's result to be refused",
        stack=tuned,
    )

    run = finished(run, tuned)
    assert run.state == "succeeded", run.error
    assert lines(ran) == ["ran", "ran"]  # the step's code ran twice; its result counts once
    slow = Task.all_teams.get(pk=slow.pk)
    states = TaskAttempt.all_teams.filter(task=slow).order_by("number").values_list("state", flat=True)
    assert list(states) == ["lost", "succeeded"] and slow.lost_attempts == 1
    store = LocalArtifactStore(tuned.store_dir)
    assert load_artifact(ArtifactRef.from_dict(slow.outputs["y"]), store=store, team="acme") == "second"
    after = Task.all_teams.get(run_id=run.pk, step="after")
    assert load_artifact(ArtifactRef.from_dict(after.logs["stdout"]), store=store, team="acme") == "second!\n"
