"""Experiment tracking with the SDK against a live server: runs, batching, errors, sources."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import cellar
from cellar.tracking import run as runs
from cellar.tracking.batcher import MAX_BODY_BYTES
from cellar.tracking.errors import ConfigurationError, TrackingError
from cellar.tracking.session import Transport
from cellar_server.tracking.models import ArtifactFile, Experiment, LatestMetric, Metric, Param, Run, RunTag
from tests.factories import mint_token

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]


def _tags(run: Run) -> dict[str, str]:
    return dict(RunTag.objects.filter(run=run).values_list("key", "value"))


def _params(run: Run) -> dict[str, str]:
    return dict(Param.objects.filter(run=run).values_list("key", "value"))


def _history(run: Run, key: str) -> list[tuple[int, float]]:
    return list(Metric.objects.filter(run=run, key=key).order_by("step").values_list("step", "value"))


def _mlflow(live_server, token: str, method: str, endpoint: str, **body) -> requests.Response:
    url = f"{live_server.url}/t/acme/mlflow/api/2.0/mlflow/{endpoint}"
    headers = {"Authorization": f"Bearer {token}"}
    if method == "GET":
        return requests.get(url, params=body, headers=headers, timeout=10)
    return requests.post(url, json=body, headers=headers, timeout=10)


# --- login -----------------------------------------------------------------------------------


def test_login_finds_the_tokens_team(live_server, editor_token, tracking_state, team, other_team, outsider):
    session = cellar.login(live_server.url, editor_token)
    assert (session.team, session.username) == ("acme", "editor-user")
    # CELLAR_TEAM only checks: a token of acme cannot log to rival.
    with pytest.raises(ConfigurationError, match="CELLAR_TEAM is 'rival' but this token belongs to acme"):
        cellar.login(live_server.url, editor_token, team="rival")
    with pytest.raises(ConfigurationError, match="refused the token"):
        cellar.login(live_server.url, "cellar_000000000000_nope")
    with pytest.raises(ConfigurationError, match="No Cellar API token"):
        cellar.login(live_server.url, "")


def test_login_from_the_environment(tracking, monkeypatch):
    monkeypatch.setenv("CELLAR_TEAM", "acme")
    with cellar.start_run(experiment="env") as run:
        run.log_metric("m", 1.0)
    assert Run.all_teams.get(run_uuid=run.run_id).team.slug == "acme"


# --- a run's life ------------------------------------------------------------------------------


def test_with_block_logs_everything_and_finishes(tracking, tmp_path, live_server, editor_token):
    model = tmp_path / "model.txt"
    model.write_text("weights v1")
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "loss.csv").write_text("1,0.5\n")
    (plots / "sub" / "acc.csv").write_text("1,0.9\n")

    with cellar.start_run(experiment="churn", name="baseline", tags={"owner": "alice"}) as run:
        run.log_params({"lr": 0.01, "optimizer": "adam"})
        run.log_param("epochs", 3)
        run.log_param("epochs", 3)  # the same value again is fine
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"acc": 0.91, "nan": float("nan"), "inf": float("inf")}, step=7)
        run.set_tag("stage", "dev")
        run.set_tag("stage", "prod")  # last one wins
        run.set_tags({"team": "growth"})
        run.log_artifact(model, artifact_path="models")
        model.write_text("weights v2")  # uploaded already: the run keeps v1
        run.log_artifacts(plots, artifact_path="plots")
        assert cellar.active_run() is run

    assert cellar.active_run() is None
    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert stored.status == "FINISHED" and stored.end_time is not None and stored.name == "baseline"
    assert stored.experiment.name == "churn" and str(stored.experiment.number) == run.experiment_id
    assert _params(stored) == {"lr": "0.01", "optimizer": "adam", "epochs": "3"}
    assert _history(stored, "loss") == [(s, 1.0 / (s + 1)) for s in range(50)]
    assert LatestMetric.objects.get(run=stored, key="nan").is_nan
    assert LatestMetric.objects.get(run=stored, key="inf").value == math.inf
    tags = _tags(stored)
    assert {k: tags[k] for k in ("owner", "stage", "team")} == {"owner": "alice", "stage": "prod", "team": "growth"}

    # A script records where it came from: argv[0] and the git commit of the cwd.
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"] == sys.argv[0]
    assert tags["mlflow.source.git.commit"] == commit
    assert stored.source_type == "script" and stored.code_version == commit

    root = f"{stored.experiment.number}/{run.run_id}/artifacts"
    paths = set(ArtifactFile.all_teams.filter(team=stored.team).values_list("path", flat=True))
    logged = {f"{root}/models/model.txt", f"{root}/plots/loss.csv", f"{root}/plots/sub/acc.csv"}
    assert paths == logged | {f"{root}/environment/requirements.txt"}  # the SDK adds the environment lock
    listed = _mlflow(live_server, editor_token, "GET", "artifacts/list", run_id=run.run_id, path="plots").json()
    assert {f["path"] for f in listed["files"]} == {"plots/loss.csv", "plots/sub"}
    download = requests.get(
        f"{live_server.url}/t/acme/mlflow/api/2.0/mlflow-artifacts/artifacts/{root}/models/model.txt",
        headers={"Authorization": f"Bearer {editor_token}"},
        timeout=10,
    )
    assert download.content == b"weights v1"


@pytest.mark.parametrize(
    ("error", "status"), [(ValueError, "FAILED"), (KeyboardInterrupt, "KILLED")], ids=["exception", "interrupt"]
)
def test_leaving_the_block_by_an_exception(tracking, error, status):
    with pytest.raises(error):
        with cellar.start_run(experiment="churn") as run:
            run.log_metric("loss", 0.5, step=1)
            raise error()
    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert stored.status == status and _history(stored, "loss") == [(1, 0.5)]


def test_module_level_functions_log_to_the_active_run(tracking, tmp_path, monkeypatch):
    note = tmp_path / "note.md"
    note.write_text("hello")
    run = cellar.start_run(experiment="fluent", name="no-block")
    assert cellar.active_run() is run
    with pytest.raises(RuntimeError, match="still active"):
        cellar.start_run(experiment="fluent")
    cellar.log_param("seed", 42)
    cellar.log_params({"depth": 6})
    cellar.log_metric("loss", 0.25, step=3)
    cellar.log_metrics({"acc": 0.75, "f1": 0.5}, step=3)
    cellar.set_tag("kind", "fluent")
    cellar.set_tags({"k2": "v2"})
    cellar.log_artifact(note)
    cellar.end_run()
    assert cellar.active_run() is None
    with pytest.raises(RuntimeError, match="has ended"):
        run.log_metric("loss", 1.0)

    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert stored.status == "FINISHED"
    assert _params(stored) == {"seed": "42", "depth": "6"}
    assert {k: v for k, v in _tags(stored).items() if k in ("kind", "k2")} == {"kind": "fluent", "k2": "v2"}
    assert sorted(Metric.objects.filter(run=stored).values_list("key", "step", "value")) == [
        ("acc", 3, 0.75),
        ("f1", 3, 0.5),
        ("loss", 3, 0.25),
    ]
    assert ArtifactFile.all_teams.filter(path__endswith=f"{run.run_id}/artifacts/note.md").exists()

    # Logging with no active run starts one, as MLflow does; CELLAR_EXPERIMENT names its experiment.
    monkeypatch.setenv("CELLAR_EXPERIMENT", "auto")
    cellar.log_metric("auto", 1.0)
    auto = cellar.active_run()
    cellar.end_run()
    assert Run.all_teams.get(run_uuid=auto.run_id).experiment.name == "auto"


def test_default_experiment_and_generated_name(tracking, team):
    with cellar.start_run() as run:
        run.log_metric("m", 1)
    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert stored.experiment.number == 0 and stored.name and run.name == stored.name


def test_keys_and_values_are_checked_when_logged(tracking):
    with cellar.start_run(experiment="checks") as run:
        with pytest.raises(ValueError, match="Invalid metric key 'bad\\$key'"):
            run.log_metric("bad$key", 1)
        with pytest.raises(ValueError, match="must not resolve"):
            run.log_metric("a/../b", 1)
        with pytest.raises(ValueError, match="could not convert|must be a real number"):
            run.log_metric("loss", "high")
        with pytest.raises(ValueError, match="limit is 6000"):
            run.log_param("long", "x" * 6001)
        run.log_param("lr", 0.1)
        with pytest.raises(TrackingError, match="Changing param values is not allowed") as caught:
            run.log_param("lr", 0.2)
        assert caught.value.code == "INVALID_PARAMETER_VALUE"
    assert Run.all_teams.get(run_uuid=run.run_id).status == "FINISHED"


# --- batching --------------------------------------------------------------------------------


def test_batches_respect_the_servers_limits(tracking, monkeypatch):
    """250 params of 5,000 characters, 250 tags, 5,000 metrics: many log-batches, each within
    100 params / 100 tags / 1,000 entities / 1 MB, and everything lands."""
    bodies: list[bytes] = []
    real_send = Transport._send

    def recording_send(self, method, url, **kwargs):
        if url.endswith("runs/log-batch"):
            bodies.append(json.dumps(kwargs["json"]).encode())
        return real_send(self, method, url, **kwargs)

    monkeypatch.setattr(Transport, "_send", recording_send)
    with cellar.start_run(experiment="limits") as run:
        for i in range(250):
            run.log_param(f"p{i}", str(i) * (5000 // len(str(i))))
            run.set_tag(f"t{i}", i)
        for step in range(5000):
            run.log_metric("loss", step / 5000, step=step)
    for raw in bodies:
        body = json.loads(raw)
        params, tags, metrics = (len(body.get(k, [])) for k in ("params", "tags", "metrics"))
        assert params <= 100 and tags <= 100 and metrics <= 1000 and params + tags + metrics <= 1000
        assert len(raw) <= MAX_BODY_BYTES
    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert Param.objects.filter(run=stored).count() == 250
    assert RunTag.objects.filter(run=stored, key__startswith="t").count() == 250
    assert Metric.objects.filter(run=stored).count() == 5000


def test_log_metric_never_waits_for_the_network(tracking, monkeypatch):
    """With the server stalled, 100,000 log_metric calls return; the points wait in the queue."""
    release = threading.Event()
    stalled = threading.Event()
    real_send = Transport._send

    def stalled_send(self, method, url, **kwargs):
        if url.endswith("runs/log-batch"):
            stalled.set()
            release.wait(60)
        return real_send(self, method, url, **kwargs)

    with cellar.start_run(experiment="speed") as run:
        monkeypatch.setattr(Transport, "_send", stalled_send)
        run.log_metric("loss", -1.0, step=-1)
        assert stalled.wait(10)  # the sender is now stuck inside a request
        for step in range(100_000):
            run.log_metric("loss", step * 0.5, step=step)
        assert run._batcher.pending() == 100_000  # all queued, none sent: the loop never blocked
        release.set()
    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert Metric.objects.filter(run=stored).count() == 100_001
    assert stored.status == "FINISHED"


def test_points_are_sent_within_a_second_without_flush(tracking):
    with cellar.start_run(experiment="cadence") as run:
        run.log_metric("loss", 0.5, step=1)
        stored = Run.all_teams.get(run_uuid=run.run_id)
        deadline = time.monotonic() + 10
        while not Metric.objects.filter(run=stored).exists():
            assert time.monotonic() < deadline, "the background thread never sent the point"
            time.sleep(0.05)


# --- refusals surface ---------------------------------------------------------------------------


def test_a_refused_param_is_raised_at_the_end_and_the_rest_lands(tracking, live_server, editor_token):
    with pytest.raises(TrackingError) as caught:
        with cellar.start_run(experiment="refusals") as run:
            # Someone else logged lr=0.1 to this run (the SDK cannot know it): the server refuses 0.2.
            answer = _mlflow(
                live_server, editor_token, "POST", "runs/log-parameter", run_id=run.run_id, key="lr", value="0.1"
            )
            assert answer.status_code == 200, answer.text
            run.log_param("lr", 0.2)
            run.log_param("batch", 32)
            for step in range(10):
                run.log_metric("loss", step, step=step)
    assert caught.value.code == "INVALID_PARAMETER_VALUE" and caught.value.status == 400
    assert "Changing param values is not allowed. Param with key='lr'" in caught.value.message
    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert _params(stored) == {"lr": "0.1", "batch": "32"}
    assert len(_history(stored, "loss")) == 10
    assert stored.status == "FAILED"


def test_a_refusal_is_raised_from_the_next_logging_call(tracking, live_server, editor_token):
    with cellar.start_run(experiment="refusals") as run:
        _mlflow(live_server, editor_token, "POST", "runs/log-parameter", run_id=run.run_id, key="lr", value="0.1")
        run.log_param("lr", 0.2)
        deadline = time.monotonic() + 10
        while run._batcher.error is None:  # the background thread's answer from the server
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(TrackingError, match="Changing param values is not allowed"):
            run.log_metric("loss", 1.0)
        run.log_metric("loss", 2.0, step=1)  # reported once; logging goes on
    stored = Run.all_teams.get(run_uuid=run.run_id)
    assert _history(stored, "loss") == [(1, 2.0)] and stored.status == "FINISHED"


def test_flush_raises_a_refusal(tracking, live_server, editor_token):
    with cellar.start_run(experiment="refusals") as run:
        _mlflow(live_server, editor_token, "POST", "runs/delete", run_id=run.run_id)
        run.log_metric("loss", 1.0)
        with pytest.raises(TrackingError, match="must be in the 'active' state"):
            run.flush()
        run.flush()  # nothing new: nothing to report


def test_a_token_without_write_scope_is_refused(live_server, team, members, tracking_state, monkeypatch, settings):
    _, reader = mint_token(team, members["viewer"])
    monkeypatch.setenv("CELLAR_URL", live_server.url)
    monkeypatch.setenv("CELLAR_TOKEN", reader)
    with pytest.raises(TrackingError) as caught:
        cellar.start_run(experiment_id="0")
    assert caught.value.code == "PERMISSION_DENIED" and "experiments:write" in caught.value.message


# --- attached to a pipeline step's run ------------------------------------------------------------


def test_a_pipeline_step_logs_to_its_run(tracking, live_server, editor_token, monkeypatch):
    created = _mlflow(live_server, editor_token, "POST", "runs/create", experiment_id="0", run_name="step-run").json()
    run_id = created["run"]["info"]["run_id"]
    monkeypatch.setenv("CELLAR_RUN_ID", run_id)

    cellar.log_metric("before", 1.0)  # no start_run: the step's run is the active one
    with cellar.start_run(experiment="ignored-in-a-step") as run:
        assert run.run_id == run_id and not run.owned
        run.log_metric("loss", 0.5, step=1)
        run.log_param("lr", 0.1)
    assert cellar.active_run() is run  # still the step's run after the block
    cellar.set_tag("after", "yes")
    cellar.flush()

    stored = Run.all_teams.get(run_uuid=run_id)
    assert stored.status == "RUNNING" and stored.end_time is None  # the engine ends it, not the step
    assert stored.experiment.number == 0
    assert _history(stored, "loss") == [(1, 0.5)] and _history(stored, "before") == [(0, 1.0)]
    assert _params(stored) == {"lr": "0.1"} and _tags(stored)["after"] == "yes"
    assert "mlflow.source.type" not in _tags(stored)  # the engine's tags are left alone
    cellar.end_run()
    assert Run.all_teams.get(run_uuid=run_id).status == "RUNNING"


# --- notebooks --------------------------------------------------------------------------------


class KernelShell:
    """The part of IPython's ZMQInteractiveShell that a kernel exposes (IPython is not installed
    here): a kernel, and the user namespace with In[] and, on IPython 8+, __session__."""

    def __init__(self, cells: list[str], session: str | None = None):
        self.kernel = object()
        self.user_ns = {"In": ["", *cells]}
        if session:
            self.user_ns["__session__"] = session


def _snapshot(live_server, token, run_id, relpath) -> requests.Response:
    stored = Run.all_teams.get(run_uuid=run_id)
    return requests.get(
        f"{live_server.url}/t/acme/mlflow/api/2.0/mlflow-artifacts/artifacts/"
        f"{stored.experiment.number}/{run_id}/artifacts/{relpath}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_a_notebook_run_records_its_notebook_file(tracking, monkeypatch, tmp_path, live_server, editor_token):
    notebook = tmp_path / "analysis" / "churn.ipynb"
    notebook.parent.mkdir()
    notebook.write_text(json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": "x = 1"}]}))
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    monkeypatch.setattr(runs.sources, "kernel_shell", lambda: KernelShell(["import cellar"]))
    with cellar.start_run(experiment="nb") as run:
        run.log_metric("m", 1)
    tags = _tags(Run.all_teams.get(run_uuid=run.run_id))
    assert tags["mlflow.source.type"] == "NOTEBOOK" and tags["mlflow.source.name"] == str(notebook)
    assert "mlflow.source.git.commit" not in tags
    assert Run.all_teams.get(run_uuid=run.run_id).source_type == "notebook"
    got = _snapshot(live_server, editor_token, run.run_id, "code/notebook_snapshot.ipynb")
    assert got.status_code == 200 and got.content == notebook.read_bytes()


def test_a_notebook_without_its_file_uploads_the_cell_history(tracking, monkeypatch, live_server, editor_token):
    shell = KernelShell(["import cellar", "df = load()\ndf.head()", "   "], session="/gone/Untitled.ipynb")
    monkeypatch.setattr(runs.sources, "kernel_shell", lambda: shell)
    with cellar.start_run(experiment="nb") as run:
        run.log_metric("m", 1)
    assert _tags(Run.all_teams.get(run_uuid=run.run_id))["mlflow.source.name"] == "/gone/Untitled.ipynb"
    text = _snapshot(live_server, editor_token, run.run_id, "code/notebook_snapshot.py").text
    assert "# In[1]:\nimport cellar\n" in text and "# In[2]:\ndf = load()\ndf.head()\n" in text
    assert "In[3]" not in text  # blank cells are left out


def test_a_run_records_its_environment(tracking, live_server, editor_token):
    with cellar.start_run(experiment="env") as run:
        run.log_metric("m", 1)
    tags = _tags(Run.all_teams.get(run_uuid=run.run_id))
    lock = _snapshot(live_server, editor_token, run.run_id, "environment/requirements.txt")
    assert lock.status_code == 200
    lines = lock.text.splitlines()
    assert lines[0] == f"# Python {sys.version.split()[0]}"
    # Every installed distribution, pinned: the file rebuilds the environment with pip install -r.
    pins = dict(line.split("==") for line in lines[1:])
    assert pins["django"] == __import__("django").get_version() and "requests" in pins
    assert tags["cellar.environment"] == f"Python {sys.version.split()[0]}, {len(pins)} packages"
    assert tags["cellar.environment_hash"] == hashlib.sha256(lock.content).hexdigest()[:16]


# --- the SDK stays lean ----------------------------------------------------------------------------


def test_the_sdk_imports_without_django():
    code = (
        "import sys\n"
        "sys.modules['django'] = None\n"
        "sys.modules['cellar_server'] = None\n"
        "import cellar, cellar.cli, cellar.tracking.sync, cellar.tracking.source\n"
        "assert callable(cellar.start_run) and callable(cellar.log_metric)\n"
        "assert not [m for m in sys.modules if m.startswith(('django', 'cellar_server')) and sys.modules[m]]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "sdk")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_experiment_is_created_once(tracking):
    with cellar.start_run(experiment="shared") as first:
        first.log_metric("m", 1)
    cellar.logout()  # a fresh process: no cached experiment ids
    with cellar.start_run(experiment="shared") as second:
        second.log_metric("m", 1)
    assert Experiment.all_teams.filter(name="shared").count() == 1
    assert first.experiment_id == second.experiment_id


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("pass", "FINISHED"),
        ("raise SystemExit(0)", "FINISHED"),
        ("1 / 0", "FAILED"),
        ("raise KeyboardInterrupt", "KILLED"),
    ],
    ids=["falls-off-the-end", "sys-exit", "uncaught-error", "ctrl-c"],
)
def test_interpreter_exit_flushes_and_ends_the_run(tracking, ending, status):
    """A script that never ends its run: atexit flushes every point and sets the status."""
    script = (
        "import cellar\n"
        "run = cellar.start_run(experiment='script')\n"
        "print(run.run_id, flush=True)\n"
        "for step in range(2500):\n"
        "    cellar.log_metric('loss', step, step=step)\n"
        f"{ending}\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    run_id = done.stdout.split()[0]
    stored = Run.all_teams.get(run_uuid=run_id)
    assert stored.status == status, done.stderr
    assert Metric.objects.filter(run=stored).count() == 2500
