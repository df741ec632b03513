"""The pool agent against a live Cellar server: real runs, real dispatched messages, real HTTP.

The dispatcher publishes its batches to the test Redis as it does in production; the test
takes them off `pool.cpu` and hands them to an `Agent` (what `cellar.pool.run_batch` does in a
Celery worker; the worker process itself is exercised by tests/engine_e2e/). Claims,
heartbeats and results go over HTTP to `live_server` with each task's token.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import redis
from django.utils import timezone

from cellar.pipelines.execute import ArtifactRef, load_artifact
from cellar.pipelines.wire import Batch
from cellar_server.pipelines.engine.dispatch import batch_from_message, dispatch_all
from cellar_server.pipelines.models import RUN_TERMINAL, PipelineRun, Task, TaskAttempt
from cellar_server.teams.actors import Actor
from cellar_worker.agent import Agent
from tests.pipelines.engine.conftest import build_notebook, cell, expire_backoff, fanout_notebook, linear_notebook

pytestmark = pytest.mark.django_db(transaction=True)


class Driver:
    """Dispatches, takes the published batches off the queue and gives them to the agent."""

    def __init__(self, agent: Agent, broker: redis.Redis):
        self.agent = agent
        self.broker = broker

    def batches(self, pool: str = "cpu") -> list[Batch]:
        dispatch_all()
        found = []
        while (raw := self.broker.rpop(f"pool.{pool}")) is not None:
            body = batch_from_message(raw)
            if body is not None:
                found.append(Batch.from_dict(body))
        return found

    def drain(self, run: PipelineRun, *, rounds: int = 200) -> PipelineRun:
        for _ in range(rounds):
            current = PipelineRun.all_teams.get(pk=run.pk)
            if current.state in RUN_TERMINAL:
                return current
            expire_backoff(current)
            batches = self.batches()
            if not batches:
                time.sleep(0.1)
            for batch in batches:
                self.agent.run_batch(batch)
        return PipelineRun.all_teams.get(pk=run.pk)


@pytest.fixture
def agent(live_server, settings, broker, store_dir):
    settings.CELLAR_API_URL = live_server.url
    settings.ARTIFACT_STORE_URL = f"file://{store_dir}"
    started = Agent(
        pool="cpu",
        default_api_url=live_server.url,
        artifact_store_url=f"file://{store_dir}",
        heartbeat_interval=0.3,
        timeout_grace=1.0,
    )
    yield started
    started.close()


@pytest.fixture
def driver(agent, redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete("pool.cpu")
    yield Driver(agent, client)
    client.close()


def wait_until(predicate, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def load(ref: dict, store_dir: Path, team: str = "acme"):
    from cellar.artifacts.local import LocalArtifactStore

    return load_artifact(ArtifactRef.from_dict(ref), store=LocalArtifactStore(store_dir), team=team)


def task(run: PipelineRun, step: str, index: int = -1, kind: str = "step") -> Task:
    return Task.all_teams.get(run_id=run.pk, step=step, index=index, kind=kind)


def test_a_linear_run_succeeds_with_outputs_and_logs(driver, promote, start_run, store_dir):
    run = start_run(promote(linear_notebook(), "linear"), {"alpha": 3})
    run = driver.drain(run)
    assert run.state == "succeeded", run.error
    assert load(task(run, "double").outputs["y"], store_dir) == 63
    report = task(run, "report")
    assert load(report.logs["stdout"], store_dir) == "run: 63\n" and "stderr" not in report.logs
    assert report.attempts.get().state == "succeeded"
    assert report.worker.startswith("cpu@")


def test_a_foreach_runs_in_one_warm_executor_per_team(driver, agent, promote, start_run, store_dir):
    run = start_run(promote(fanout_notebook(), "fanout"), {"n": 5})
    run = driver.drain(run)
    assert run.state == "succeeded", run.error
    assert load(task(run, "total").outputs["total"], store_dir) == sum(i * i + 10 for i in range(5))
    assert task(run, "square", kind="expand").items and len(task(run, "square", kind="expand").items) == 5
    idle = agent.executors.idle()
    assert len(idle) == 1 and idle[0].team == "acme"
    assert idle[0].tasks_run == Task.all_teams.filter(run_id=run.pk).count()


def test_a_failing_step_reports_its_cell_and_line(driver, promote, start_run):
    notebook = build_notebook(cell("x = 1", "step:load"), cell("y = x + 1\nraise ValueError('bad input')", "step:boom"))
    run = driver.drain(start_run(promote(notebook, "failing")))
    assert run.state == "failed"
    assert run.error["step"] == "boom" and run.error["cell"] == 1 and run.error["line"] == 2
    assert "bad input" in run.error["message"]


def test_a_redelivered_message_for_a_live_lease_is_dropped(driver, agent, promote, start_run, live_server, tmp_path):
    """The broker hands the same message out again while an agent runs it: to another agent (the
    engine refuses the claim) or to the same one (it sees it holds the task): dropped either way."""
    marker, release = tmp_path / "started", tmp_path / "release"
    code = (
        "import pathlib, time\n"
        f"pathlib.Path({str(marker)!r}).open('a').write('ran\\n')\n"
        f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.05)\n"
        "x = 1"
    )
    run = start_run(promote(build_notebook(cell(code, "step:slow")), "slow"))
    (batch,) = driver.batches()
    first = threading.Thread(target=agent.run_batch, args=(batch,))
    first.start()
    wait_until(marker.exists, "the step to start")
    redelivered = json.loads(json.dumps(batch.to_dict()))
    other = Agent(
        pool="cpu",
        default_api_url=live_server.url,
        artifact_store_url=agent.executors.env["ARTIFACT_STORE_URL"],
        worker="cpu@elsewhere:1",
    )
    try:
        assert other.run_batch(Batch.from_dict(redelivered)) == {
            "claimed": 0,
            "refused": 1,
            "reported": 0,
            "abandoned": 0,
        }
    finally:
        other.close()
    again = agent.run_batch(Batch.from_dict(redelivered))
    assert again == {"claimed": 0, "refused": 1, "reported": 0, "abandoned": 0}
    release.touch()
    first.join(timeout=60)
    run = driver.drain(run)
    assert run.state == "succeeded"
    assert marker.read_text() == "ran\n"  # once
    assert list(TaskAttempt.all_teams.filter(task__run_id=run.pk).values_list("state", flat=True)) == ["succeeded"]


def test_cancel_kills_the_running_step_and_reports_it_cancelled(driver, agent, promote, start_run, members, tmp_path):
    from cellar_server.pipelines.engine.runs import run_cancel

    pidfile = tmp_path / "pid"
    code = f"import os, pathlib, time\npathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()))\ntime.sleep(600)"
    run = start_run(promote(build_notebook(cell(code, "step:forever")), "forever"))
    (batch,) = driver.batches()
    worker = threading.Thread(target=agent.run_batch, args=(batch,))
    worker.start()
    wait_until(lambda: pidfile.exists() and pidfile.read_text(), "the step to start")
    run_cancel(run=run, actor=Actor(user=members["editor"]))
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert not psutil.pid_exists(int(pidfile.read_text())) or psutil.Process(int(pidfile.read_text())).status() == (
        psutil.STATUS_ZOMBIE
    )
    run = driver.drain(run)
    assert run.state == "cancelled"
    forever = task(run, "forever")
    assert forever.state == "cancelled" and forever.attempts.get().state == "cancelled"


def test_a_step_past_its_timeout_fails_with_timeout_error(driver, promote, start_run):
    code = "import time\nwhile True:\n    try:\n        time.sleep(600)\n    except BaseException:\n        pass"
    run = driver.drain(start_run(promote(build_notebook(cell(code, "step:stuck", "timeout:1")), "stuck")))
    assert run.state == "failed"
    assert run.error["type"] == "TimeoutError"
    assert task(run, "stuck").attempts.get().state == "timed_out"


def test_a_dead_executor_leaves_its_task_to_the_engine_and_the_batch_goes_on(
    driver, agent, promote, start_run, settings, store_dir, tmp_path
):
    """SIGKILL of the executor mid-task: that task is not reported (its lease expires and the
    engine requeues it as lost, without using a retry); the rest of the batch runs in a new one."""
    from cellar_server.pipelines.engine.reconcile import reconcile

    killed = tmp_path / "killed-once"
    code = (
        "import os, pathlib, signal\n"
        f"flag = pathlib.Path({str(killed)!r})\n"
        "if item == 0 and not flag.exists():\n"
        "    flag.touch()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "sq = item * item"
    )
    notebook = build_notebook(
        cell("items = list(range(4))", "step:make"),
        cell(code, "step:square", "foreach:items"),
        cell("total = sum(sq)", "step:total", "join"),
        cell("print(total)", "step:show"),
    )
    settings.CELLAR_ENGINE_POOL_WORKERS = 1
    run = start_run(promote(notebook, "killer"))
    for _ in range(2):  # make, then the expansion
        for batch in driver.batches():
            agent.run_batch(batch)
    branch_batches = driver.batches()
    assert branch_batches and branch_batches[0].tasks[0].index == 0
    summary = agent.run_batch(branch_batches[0])
    assert summary["abandoned"] == 1 and summary["reported"] == len(branch_batches[0].tasks) - 1
    first = task(run, "square", 0)
    assert first.state == "running"  # nobody reported it; its lease runs out
    assert agent.heartbeats.held() == []

    Task.all_teams.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    reconcile()
    for batch in branch_batches[1:]:
        agent.run_batch(batch)
    run = driver.drain(run)
    assert run.state == "succeeded", run.error
    assert load(task(run, "total").outputs["total"], store_dir) == 0 + 1 + 4 + 9
    states = list(TaskAttempt.all_teams.filter(task=first).order_by("number").values_list("state", flat=True))
    assert states == ["lost", "succeeded"]
    assert Task.all_teams.get(pk=first.pk).lost_attempts == 1


def test_a_running_steps_output_reaches_its_task_before_it_ends(driver, agent, promote, start_run, tmp_path):
    """Heartbeats carry the end of what the running task printed (C-level writes included); the
    task keeps it as its live log until the result brings the whole log."""
    release = tmp_path / "release"
    code = (
        "import os, pathlib, time\nprint('epoch 1 loss 0.9', flush=True)\nos.write(2, b'a warning\\n')\n"
        f"while not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.05)"
    )
    run = start_run(promote(build_notebook(cell(code, "step:train")), "tail"))
    (batch,) = driver.batches()
    worker = threading.Thread(target=agent.run_batch, args=(batch,))
    worker.start()
    try:
        wait_until(lambda: task(run, "train").live_logs.get("stdout") == "epoch 1 loss 0.9\n", "the live stdout")
        assert task(run, "train").live_logs.get("stderr") == "a warning\n"
    finally:
        release.touch()
        worker.join(timeout=60)
    run = driver.drain(run)
    train = task(run, "train")
    assert run.state == "succeeded" and train.live_logs == {} and "stdout" in train.logs
