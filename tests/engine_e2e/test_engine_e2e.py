"""Notebooks promoted and run on the real engine: web + control worker + pool agent + Redis.

`cellar promote --run --wait` is the user's command; it exits 0 when the run succeeded and 1
otherwise. Everything between (dispatch, the broker, claims, heartbeats, executors, results,
advancing the DAG, retries, cancel, a killed agent) runs in real processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.execute import ArtifactRef, load_artifact
from cellar_server.pipelines.models import PipelineRun, Task, TaskAttempt
from tests.engine_e2e.conftest import api_get, wait_for
from tests.factories import mint_token
from tests.pipelines.engine.conftest import build_notebook, cell, linear_notebook

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token(team, members):
    return mint_token(team, members["editor"])[1]


def promote(engine, token: str, notebook: dict, name: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(notebook))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CELLAR_")}
    environ.update(CELLAR_URL=engine.url, CELLAR_TOKEN=token)
    return subprocess.run(
        [sys.executable, "-m", "cellar.cli", "promote", str(path), "--pipeline", name, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=environ,
    )


def the_run(name: str) -> PipelineRun:
    return PipelineRun.all_teams.select_related("pipeline").get(pipeline__name=name)


def load(engine, ref: dict, team: str = "acme"):
    return load_artifact(ArtifactRef.from_dict(ref), store=LocalArtifactStore(engine.store_dir), team=team)


def attempts(run: PipelineRun, step: str, index: int = -1) -> list[str]:
    task = Task.all_teams.get(run_id=run.pk, step=step, index=index, kind="step")
    return list(TaskAttempt.all_teams.filter(task=task).order_by("number").values_list("state", flat=True))


def test_a_linear_notebook_runs_to_success(engine, token, tmp_path):
    notebook = linear_notebook(extra="\nimport json, os\nprint(json.dumps(sorted(os.environ)))")
    done = promote(engine, token, notebook, "linear", tmp_path, "--run", "-p", "alpha=3", "--wait")
    assert done.returncode == 0, done.stderr + engine.output("control")[-3000:]
    run = the_run("linear")
    assert run.state == "succeeded" and run.parameters["alpha"] == 3
    assert load(engine, Task.all_teams.get(run_id=run.pk, step="double").outputs["y"]) == 63
    summary, environment = load(engine, Task.all_teams.get(run_id=run.pk, step="report").logs["stdout"]).splitlines()
    assert summary == "run: 63"
    # User code ran without the broker or the database in reach.
    seen = json.loads(environment)
    assert "DATABASE_URL" not in seen and "REDIS_URL" not in seen and "CELLAR_BROKER_URL" not in seen
    assert "CELLAR_TOKEN" in seen and "ARTIFACT_STORE_URL" in seen
    assert all(attempts(run, step) == ["succeeded"] for step in ("load", "double", "report"))


def test_a_foreach_over_100_elements_and_its_join(engine, token, tmp_path):
    notebook = build_notebook(
        cell("n = 100", "parameters"),
        cell("items = list(range(n))", "step:make"),
        cell("sq = item * item", "step:square", "foreach:items"),
        cell("total = sum(sq)\ncount = len(sq)", "step:total", "join"),
        cell("print(total, count)", "step:show"),
    )
    done = promote(engine, token, notebook, "fanout", tmp_path, "--run", "--wait")
    assert done.returncode == 0, done.stderr
    run = the_run("fanout")
    total = Task.all_teams.get(run_id=run.pk, step="total")
    assert load(engine, total.outputs["total"]) == sum(i * i for i in range(100))
    assert load(engine, total.outputs["count"]) == 100
    branches = Task.all_teams.filter(run_id=run.pk, step="square", kind="step")
    assert branches.count() == 100 and set(branches.values_list("state", flat=True)) == {"succeeded"}
    # Each branch ran exactly once.
    assert TaskAttempt.all_teams.filter(task__in=branches).count() == 100


def test_a_flaky_step_is_retried_and_a_failing_one_fails_the_run(engine, token, tmp_path):
    counter = tmp_path / "attempts"
    flaky = (
        "import pathlib\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "n = int(counter.read_text()) if counter.exists() else 0\n"
        "counter.write_text(str(n + 1))\n"
        "if n == 0:\n"
        "    raise RuntimeError('flaky the first time')\n"
        "y = n"
    )
    notebook = build_notebook(cell("x = 1", "step:load"), cell(flaky, "step:flaky", "retry:2"))
    done = promote(engine, token, notebook, "flaky", tmp_path, "--run", "--wait")
    assert done.returncode == 0, done.stderr
    run = the_run("flaky")
    assert run.state == "succeeded" and attempts(run, "flaky") == ["failed", "succeeded"]

    failing = build_notebook(cell("x = 1", "step:load"), cell("y = x + 1\nraise ValueError('bad input')", "step:boom"))
    done = promote(engine, token, failing, "failing", tmp_path, "--run", "--wait")
    assert done.returncode == 1
    run = the_run("failing")
    assert run.state == "failed"
    assert run.error["step"] == "boom" and run.error["cell"] == 1 and run.error["line"] == 2
    assert "Run 1 failed." in done.stderr
    assert "error: step 'boom', cell 1, line 2: ValueError: bad input" in done.stderr


def test_cancel_stops_a_running_step(engine, token, team, tmp_path):
    pidfile = tmp_path / "pid"
    code = f"import os, pathlib, time\npathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()))\ntime.sleep(600)"
    started = promote(engine, token, build_notebook(cell(code, "step:forever")), "forever", tmp_path, "--run")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the step to start", stack=engine)
    executor = int(pidfile.read_text())
    run = the_run("forever")
    base = f"{engine.url}/api/v1/teams/{team.slug}/pipelines/forever/runs/{run.number}/"
    cancelled = requests.post(base + "cancel/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert cancelled.status_code in (200, 202), cancelled.text
    wait_for(lambda: api_get(base, token)["state"] == "cancelled", what="the run to be cancelled", stack=engine)
    assert wait_for(lambda: not psutil.pid_exists(executor) or psutil.Process(executor).status() == "zombie")
    assert attempts(the_run("forever"), "forever") == ["cancelled"]


def test_sigkill_of_the_agent_mid_step_the_run_still_succeeds_once(engine, token, settings, tmp_path):
    """The agent dies with a step running: its executor exits, the lease expires, the engine
    requeues the task (not a user retry), a new agent runs it; exactly one attempt succeeds."""
    settings.CELLAR_ENGINE_LEASE_TTL = 5  # a lost worker noticed within seconds
    flag, ran = tmp_path / "first-attempt", tmp_path / "ran"
    code = (
        "import pathlib, time\n"
        f"pathlib.Path({str(ran)!r}).open('a').write('attempt\\n')\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "if not flag.exists():\n"
        "    flag.touch()\n"
        "    time.sleep(600)\n"
        "y = 2"
    )
    notebook = build_notebook(cell("x = 1", "step:load"), cell(code, "step:work"), cell("z = y + x", "step:after"))
    started = promote(engine, token, notebook, "killed", tmp_path, "--run")
    assert started.returncode == 0, started.stderr
    wait_for(flag.exists, what="the step to start", stack=engine)
    engine.kill_agent()
    engine.start_agent()
    run = wait_for(
        lambda: (r := the_run("killed")).state in ("succeeded", "failed", "cancelled") and r,
        what="the run to end",
        stack=engine,
    )
    assert run.state == "succeeded", run.error
    assert attempts(run, "work") == ["lost", "succeeded"]
    assert ran.read_text() == "attempt\nattempt\n"
    assert Task.all_teams.get(run_id=run.pk, step="work").lost_attempts == 1
