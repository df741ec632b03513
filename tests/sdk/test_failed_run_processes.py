"""A failed production run on the real engine (web + control worker + pool agent + Redis, the
fixtures of tests/engine_e2e), then the way back: the real control worker posts the team's
webhook to a local HTTP server once, the task's page shows the logs the real agent uploaded,
and `cellar pull` (a subprocess, through the API) writes a notebook that nbclient executes to
the same exception."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from cellar_server.pipelines import notifications
from cellar_server.pipelines.models import PipelineRun, RunNotice, Task
from cellar_server.teams.actors import Actor
from tests.engine_e2e import conftest as engine_e2e
from tests.factories import mint_token
from tests.pipelines.engine.test_notifications import Hook
from tests.sdk.test_load_task_pull import roots_notebook

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

# The real processes of tests/engine_e2e (web = live_server, control worker, pool agent, Redis).
stack, engine, wait_for = engine_e2e.stack, engine_e2e.engine, engine_e2e.wait_for


def cli(server, token: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CELLAR_")}
    environ.update(CELLAR_URL=server.url, CELLAR_TOKEN=token)
    return subprocess.run(
        [sys.executable, "-m", "cellar.cli", *args], capture_output=True, text=True, timeout=300, env=environ, cwd=cwd
    )


def test_a_failed_production_run_notifies_shows_its_logs_and_pulls_into_a_notebook(
    engine, team, members, tmp_path, client
):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    hook = Hook()
    try:
        notifications.webhook_set(team=team, url=hook.url, actor=Actor(members["admin"]))
        admin = mint_token(team, members["admin"])[1]
        path = tmp_path / "roots.ipynb"
        path.write_text(json.dumps(roots_notebook()))
        done = cli(engine, admin, "promote", str(path), "--pipeline", "roots", "--production", "--run", "--wait")
        assert done.returncode == 1, done.stderr  # the run failed
        assert "ZeroDivisionError" in done.stderr
        run = PipelineRun.all_teams.get(pipeline__name="roots")
        assert run.state == "failed" and run.error["step"] == "root" and run.error["index"] == 2

        # The control worker notified, once.
        notice = wait_for(
            lambda: RunNotice.all_teams.filter(run=run, webhook_state="sent").first(),
            what="the webhook of the failed run",
            stack=engine,
        )
        assert notice.webhook_status == 200 and len(hook.received) == 1
        assert hook.received[0]["body"]["error"]["type"] == "ZeroDivisionError"
    finally:
        hook.close()

    # The task's page shows the stdout the agent uploaded, and the debug commands.
    task = Task.all_teams.get(run=run, step="root", index=2, kind="step")
    assert task.logs["stdout"]["sha256"]  # uploaded by the agent
    client.force_login(members["viewer"])
    page = client.get(f"/t/acme/pipelines/roots/runs/{run.number}/tasks/{task.pk}/").content.decode()
    assert "cellar pull roots/1 --step root --index 2" in page and "ZeroDivisionError" in page
    assert re.search(r'data-testid="log-stdout">root of 0\s*</pre>', page)

    # cellar pull through the API, then the notebook raises what the task raised.
    editor = mint_token(team, members["editor"])[1]
    pulled = cli(engine, editor, "pull", "roots/1", "--step", "root", "--index", "2", cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    notebook = nbformat.read(str(tmp_path / "roots-1-root-2.ipynb"), as_version=4)
    os.environ["CELLAR_URL"], os.environ["CELLAR_TOKEN"] = engine.url, editor
    try:
        with pytest.raises(CellExecutionError) as caught:
            NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    finally:
        del os.environ["CELLAR_URL"], os.environ["CELLAR_TOKEN"]
    assert caught.value.ename == "ZeroDivisionError"
