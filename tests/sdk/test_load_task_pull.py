"""Back to the notebook: `cellar.load_task` reads a task's exact inputs and outputs from a live
server, and `cellar pull` writes a notebook that, executed with nbclient on a python3 kernel,
raises the same exception the task raised on the worker. The run is driven by the engine tests'
FakeWorker (real step code, in-process) against the live server's artifact store."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from cellar import cli
from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.load_task import TaskNotFound, load_task, parse_run
from cellar.pipelines.pull import task_notebook
from cellar_server.pipelines import services
from cellar_server.pipelines.engine.runs import run_create
from cellar_server.teams.actors import Actor
from cellar_server.teams.roles import scopes_for
from tests.pipelines.engine.conftest import FakeWorker, build_notebook, cell, task_of

pytestmark = pytest.mark.django_db(transaction=True)


def roots_notebook():
    """load -> root (foreach over rows; element 2 divides by zero) -> total (join)."""
    return build_notebook(
        cell("import math", "imports"),
        cell("def inverse_of(v):\n    return 1 / v", "functions"),
        cell("scale = 3\nrows = [1, 4, 0, 9]", "parameters"),
        cell("values = [r for r in rows]", "step:load"),
        cell(
            "print(f'root of {value}')\nroot = math.sqrt(value) * scale\ninverse = inverse_of(value)",
            "step:root",
            "foreach:values:value",
        ),
        cell("total = sum(inverse)", "step:total", "join"),
    )


@pytest.fixture
def failed_run(team, members, tmp_path, settings, live_server, editor_token, tracking_state, monkeypatch):
    from cellar_server.celery import app

    # The FakeWorker plays the agent: batches and dispatch requests must not reach a real broker.
    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)
    store_dir = tmp_path / "store"
    settings.ARTIFACT_STORE_URL = f"file://{store_dir}"
    monkeypatch.setenv("CELLAR_URL", live_server.url)
    monkeypatch.setenv("CELLAR_TOKEN", editor_token)
    version = services.pipeline_version_create(
        team=team,
        pipeline_name="roots",
        notebook=roots_notebook(),
        actor=Actor(user=members["admin"]),
        scopes=scopes_for("admin"),
    ).version
    run = run_create(
        team=team,
        pipeline=version.pipeline,
        version=version,
        parameters={"scale": 5},
        actor=Actor(user=members["editor"]),
    )
    run = FakeWorker(LocalArtifactStore(store_dir)).drain(run)
    assert run.state == "failed" and run.error["step"] == "root" and run.error["index"] == 2
    return run


def test_load_task_returns_the_exact_inputs_and_outputs(failed_run):
    inputs, outputs = load_task("roots/1", "load")
    assert inputs == {} and outputs == {"values": [1, 4, 0, 9]}
    ok = load_task("roots/1", "root", index=1)
    assert ok.inputs == {"value": 4} and ok.item == 4
    assert ok.outputs == {"inverse": 0.25}  # only what a later step reads is stored
    assert ok.parameters == {"scale": 5, "rows": [1, 4, 0, 9]} and ok.state == "succeeded"
    broken = load_task(1, "root", 2, pipeline="roots")
    assert broken.inputs == {"value": 0} and broken.outputs == {} and broken.state == "failed"
    assert broken.error["exc_type"] == "ZeroDivisionError" and "inverse_of(value)" in broken.code
    assert "def inverse_of" in broken.prelude and "import math" in broken.prelude


def test_load_task_says_what_is_wrong(failed_run):
    with pytest.raises(TaskNotFound, match="give index"):
        load_task("roots/1", "root")
    with pytest.raises(TaskNotFound, match="no task nope"):
        load_task("roots/1", "nope")
    with pytest.raises(ValueError, match="pipeline/number"):
        parse_run("roots-1")
    assert parse_run("roots#7") == ("roots", 7)


def test_the_pulled_notebook_reproduces_the_failure(failed_run, tmp_path, capsys):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = tmp_path / "debug.ipynb"
    code = cli.main(["pull", "roots/1", "--step", "root", "--index", "2", "-o", str(path)])
    assert code == 0, capsys.readouterr().err
    assert "Wrote" in capsys.readouterr().out
    notebook = nbformat.read(str(path), as_version=4)
    sources = [c.source for c in notebook.cells]
    assert "roots #1" in sources[0] and "ZeroDivisionError" in sources[0] and "v1" in sources[0]
    assert sources[1] == "rows = [1, 4, 0, 9]\nscale = 5"  # the run's values, not the defaults
    assert "import math" in sources[2] and 'cellar.load_task("roots/1", "root", index=2)' in sources[3]
    assert sources[4] == "print(f'root of {value}')\nroot = math.sqrt(value) * scale\ninverse = inverse_of(value)"
    assert notebook.metadata["cellar"]["pulled"]["task"] == task_of(failed_run, "root", 2).pk
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    with pytest.raises(CellExecutionError) as caught:
        client.execute()
    assert caught.value.ename == "ZeroDivisionError"
    executed = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not any(o.get("output_type") == "error" for o in c.outputs) for c in executed[:-1])
    assert executed[-1].outputs[-1]["ename"] == "ZeroDivisionError"


def test_a_pulled_succeeded_task_runs_clean_and_matches_its_outputs(failed_run, tmp_path):
    from nbclient import NotebookClient

    notebook = task_notebook(load_task("roots/1", "root", index=3))
    notebook.cells.append(nbformat.v4.new_code_cell("assert {'inverse': inverse} == recorded_outputs and root == 15.0"))
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    assert json.dumps(notebook.cells[-1].outputs) == "[]"


def test_pull_refuses_what_it_cannot_do(failed_run, tmp_path, capsys):
    assert cli.main(["pull", "roots/1", "--step", "nope", "-o", str(tmp_path / "x.ipynb")]) == 1
    assert "no task nope" in capsys.readouterr().err
    assert cli.main(["pull", "roots/9", "--step", "root", "--index", "0", "-o", str(tmp_path / "x.ipynb")]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert cli.main(["pull", "roots", "--step", "root"]) == 2
    (tmp_path / "taken.ipynb").write_text("{}")
    assert cli.main(["pull", "roots/1", "--step", "load", "-o", str(tmp_path / "taken.ipynb")]) == 2
    assert "--force" in capsys.readouterr().err


def test_a_failed_foreach_expansion_pulls_too(team, members, failed_run, tmp_path):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = build_notebook(
        cell("values = 5", "step:load"), cell("y = value * 2", "step:twice", "foreach:values:value")
    )
    version = services.pipeline_version_create(
        team=team,
        pipeline_name="bad-fan",
        notebook=notebook,
        actor=Actor(user=members["admin"]),
        scopes=scopes_for("admin"),
    ).version
    run = run_create(
        team=team, pipeline=version.pipeline, version=version, parameters={}, actor=Actor(user=members["editor"])
    )
    from django.conf import settings

    run = FakeWorker(LocalArtifactStore(Path(settings.ARTIFACT_STORE_URL[len("file://") :]))).drain(run)
    assert run.state == "failed" and run.error["kind"] == "expand"
    task = load_task("bad-fan/1", "twice")
    assert task.kind == "expand" and task.inputs == {"values": 5} and "expand_foreach(values)" in task.code
    pulled = task_notebook(task)
    assert "evaluated the foreach's iterable" in pulled.cells[0].source
    with pytest.raises(CellExecutionError) as caught:
        NotebookClient(pulled, kernel_name="python3", timeout=120).execute()
    assert caught.value.ename == "TypeError" and "foreach needs something to iterate over" in str(caught.value)
