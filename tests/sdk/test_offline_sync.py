"""Offline runs: logged with no server into the offline folder, then `cellar sync`ed to a live one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

import cellar
from cellar.cli import main as cli_main
from cellar.tracking import sync as syncing
from cellar.tracking.offline import list_folders
from cellar.tracking.session import Transport, login
from cellar_server.tracking.models import ArtifactFile, Metric, Param, Run, RunTag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nowhere(tracking_state, monkeypatch):
    """No server at all: a URL nothing listens on and no token."""
    monkeypatch.setenv("CELLAR_URL", "http://127.0.0.1:9")
    return tracking_state


@pytest.fixture
def server(live_server, editor_token, settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifact-store'}"
    return ["--url", live_server.url, "--token", editor_token]


def _run_by_client_id(client_id: str) -> Run:
    return Run.all_teams.get(tags__key="cellar.client_run_id", tags__value=client_id)


def _log_offline_run(tmp_path, *, metrics: int = 30, **kwargs) -> cellar.Run:
    model = tmp_path / "model.bin"
    model.write_bytes(b"v1")
    with cellar.start_run(experiment="offline-exp", name="on-the-train", tags={"where": "train"}, **kwargs) as run:
        run.log_params({"lr": 0.01, "layers": 3})
        for step in range(metrics):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("nan", float("nan"))
        run.set_tag("stage", "dev")
        run.set_tag("stage", "final")
        run.log_artifact(model, artifact_path="models")
        model.write_bytes(b"v2")  # copied when logged: the run keeps v1
    return run


def test_offline_run_is_written_locally_then_synced(nowhere, tmp_path, server, capsys):
    run = _log_offline_run(tmp_path, offline=True)
    assert run.offline and run.run_id and not Run.all_teams.exists()

    [folder] = list_folders(nowhere)
    assert folder.id == run.run_id
    meta = folder.meta()
    assert meta["experiment"] == "offline-exp" and meta["run_name"] == "on-the-train"
    assert meta["tags"]["where"] == "train" and meta["tags"]["mlflow.source.type"] == "LOCAL"
    records = [r for _, r in folder.records()]
    kinds = [r["kind"] for r in records]
    assert kinds.count("metric") == 31 and kinds.count("param") == 2 and kinds[-1] == "end"
    assert records[-1]["status"] == "FINISHED"
    assert {"kind": "artifact", "path": "models/model.bin"} in records
    assert folder.artifact_file("models/model.bin").read_bytes() == b"v1"
    assert any(r.get("key") == "nan" and r["value"] == "NaN" for r in records)  # strict JSON, MLflow's spelling

    assert cli_main([*server, "sync"]) == 0
    out = capsys.readouterr().out
    stored = _run_by_client_id(run.run_id)
    assert f"synced                 {run.run_id} -> run {stored.run_uuid}" in out
    assert stored.experiment.name == "offline-exp" and stored.name == "on-the-train"
    assert stored.status == "FINISHED" and stored.end_time == records[-1]["end_time"]
    assert stored.start_time == meta["start_time"]
    assert dict(Param.objects.filter(run=stored).values_list("key", "value")) == {"lr": "0.01", "layers": "3"}
    tags = dict(RunTag.objects.filter(run=stored).values_list("key", "value"))
    assert tags["stage"] == "final" and tags["where"] == "train" and stored.source_type == "script"
    assert Metric.objects.filter(run=stored, key="loss").count() == 30
    assert Metric.objects.get(run=stored, key="nan").is_nan
    artifact = ArtifactFile.all_teams.get(
        path=f"{stored.experiment.number}/{stored.run_uuid}/artifacts/models/model.bin"
    )
    assert artifact.size == 2
    assert folder.state()["done"] is True

    # Again: nothing is sent twice.
    assert cli_main([*server, "sync"]) == 0
    assert "already synced" in capsys.readouterr().out
    assert Run.all_teams.count() == 1 and Metric.objects.filter(run=stored).count() == 31


def test_offline_from_the_environment_with_module_functions(nowhere, server, monkeypatch):
    monkeypatch.setenv("CELLAR_OFFLINE", "1")
    cellar.log_param("mode", "env")
    cellar.log_metric("m", 2.0, step=4)
    run = cellar.active_run()
    assert run.offline
    with pytest.raises(RuntimeError):
        with cellar.start_run() as failing:
            pass
    cellar.end_run("KILLED")
    with pytest.raises(ZeroDivisionError):
        with cellar.start_run(experiment="crashy") as failing:
            failing.log_metric("x", 1)
            1 / 0  # noqa: B018

    assert cli_main([*server, "sync"]) == 0
    assert _run_by_client_id(run.run_id).status == "KILLED"
    assert list(Metric.objects.filter(run=_run_by_client_id(run.run_id)).values_list("key", "step", "value")) == [
        ("m", 4, 2.0)
    ]
    assert _run_by_client_id(failing.run_id).status == "FAILED"


class Cut:
    """The SDK's HTTP layer stops after `after` requests: the connection drops. With
    `lose_answer`, the last request reaches the server and only its answer is lost."""

    def __init__(self, after: int, lose_answer: bool):
        self.after = after
        self.lose_answer = lose_answer
        self.sent: list[str] = []
        self.real = Transport._send

    def send(self, transport, method, url, **kwargs):
        if len(self.sent) >= self.after:
            raise requests.ConnectionError("connection refused (test cut)")
        self.sent.append(f"{method} {url.rsplit('/mlflow', 1)[-1]}")
        answer = self.real(transport, method, url, **kwargs)
        if self.lose_answer and len(self.sent) == self.after:
            raise requests.ConnectionError("connection reset (test cut, after the server acted)")
        return answer


# The requests of one sync: get-by-name (404), experiments/create, runs/search, runs/create,
# 5 log-batches, runs/get, 3 artifact PUTs, runs/update: 14 in all.
@pytest.mark.parametrize("lose_answer", [False, True], ids=["refused", "answer-lost"])
@pytest.mark.parametrize("after", [1, 3, 4, 6, 10, 12, 13], ids=lambda n: f"cut-after-{n}")
def test_an_interrupted_sync_resumes_without_duplicates(
    nowhere, tmp_path, server, live_server, editor_token, monkeypatch, after, lose_answer
):
    files = tmp_path / "files"
    files.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (files / name).write_text(name)
    with cellar.start_run(experiment="resume", offline=True) as run:
        run.log_param("lr", 0.1)
        for step in range(4500):
            run.log_metric("loss", step / 10, step=step)
        run.log_artifacts(files, artifact_path="files")

    session = login(live_server.url, editor_token)
    cut = Cut(after, lose_answer)
    monkeypatch.setattr(Transport, "_send", lambda transport, method, url, **kw: cut.send(transport, method, url, **kw))
    [first] = syncing.sync_runs(session, retry_for=0.2)
    assert first.outcome == syncing.FAILED and "cannot reach" in first.messages[0]
    monkeypatch.setattr(Transport, "_send", cut.real)

    [second] = syncing.sync_runs(session)
    assert second.outcome == syncing.SYNCED, second.messages
    stored = _run_by_client_id(run.run_id)
    assert Run.all_teams.filter(experiment__name="resume").count() == 1
    assert list(Metric.objects.filter(run=stored).order_by("id").values_list("step", flat=True)) == list(range(4500))
    assert Param.objects.filter(run=stored).count() == 1 and stored.status == "FINISHED"
    paths = ArtifactFile.all_teams.filter(path__contains=stored.run_uuid).values_list("path", flat=True)
    names = sorted(p.rsplit("/", 1)[-1] for p in paths if "/artifacts/files/" in p)
    assert names == ["a.txt", "b.txt", "c.txt"]
    # What the first sync got through was not sent again.
    assert first.records + second.records == 4501


def test_sync_leaves_a_run_still_logging_alone(nowhere, server, capsys):
    run = cellar.start_run(experiment="live", offline=True)
    run.log_metric("m", 1)
    run.flush()
    assert cli_main([*server, "sync"]) == 0
    assert "busy" in capsys.readouterr().out and not Run.all_teams.exists()
    run.end()
    assert cli_main([*server, "sync"]) == 0
    assert _run_by_client_id(run.run_id).status == "FINISHED"


def test_a_run_whose_process_died_is_synced_as_failed(nowhere, server):
    code = (
        "import os, cellar\n"
        "run = cellar.start_run(experiment='crash', offline=True)\n"
        "run.log_metric('loss', 0.5, step=1)\n"
        "run.flush()\n"
        "print(run.run_id, flush=True)\n"
        "os._exit(1)  # killed: no end, no atexit\n"
    )
    died = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert died.returncode == 1, died.stderr
    run_id = died.stdout.strip()
    [folder] = list_folders(nowhere)
    assert [r["kind"] for _, r in folder.records()] == ["artifact", "metric"]  # the environment lock, the metric
    [result] = syncing.sync_runs(login(server[1], server[3]))
    assert result.outcome == syncing.SYNCED and "marked FAILED" in result.messages[0]
    stored = _run_by_client_id(run_id)
    assert stored.status == "FAILED" and Metric.objects.get(run=stored).value == 0.5


def test_sync_reports_what_the_server_refuses(nowhere, server, live_server, editor_token, capsys):
    with cellar.start_run(experiment="refused", offline=True) as run:
        run.log_param("lr", 0.2)
        run.log_metric("loss", 1.0)
    [folder] = list_folders(nowhere)
    session = login(live_server.url, editor_token)
    # The run already exists on the server with lr=0.1 (e.g. a sync from another copy of the folder).
    syncing.sync_runs(session, retry_for=0.2)
    stored = _run_by_client_id(run.run_id)
    Param.objects.filter(run=stored).update(value="0.1")
    folder.save_state({"run_id": stored.run_uuid})
    assert cli_main([*server, "sync"]) == 1
    captured = capsys.readouterr()
    assert "synced with refusals" in captured.out
    assert "Changing param values is not allowed" in captured.err
    assert json.loads((folder.path / "sync.json").read_text())["done"] is True


def test_sync_needs_a_token(nowhere, capsys, live_server):
    assert cli_main(["--url", live_server.url, "sync"]) == 1
    assert "No Cellar API token" in capsys.readouterr().err
