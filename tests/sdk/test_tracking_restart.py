"""The SDK against a real gunicorn server that goes away mid-logging and comes back.

The server runs as its own process on its own SQLite database (CELLAR_HOME in a temp
folder), bootstrapped with `manage.py migrate` and `cellar_bootstrap`, exactly as an
operator would. What landed is read back through the MLflow API and, for the order of
arrival, from the database file itself.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import cellar
from cellar.cli import main as cli_main
from cellar.tracking.offline import list_folders

pytestmark = pytest.mark.processes

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CellarServer:
    """One Cellar web process (gunicorn) on a fixed port, stoppable and restartable."""

    def __init__(self, home: Path):
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = home / "db.sqlite3"
        self.env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
        self.env.update(
            CELLAR_HOME=str(home),
            DATABASE_URL=f"sqlite:///{self.db}",
            ARTIFACT_STORE_URL=f"file://{home / 'artifacts'}",
            CELLAR_LOG_LEVEL="WARNING",
        )
        self.proc: subprocess.Popen | None = None
        home.mkdir(parents=True, exist_ok=True)
        self.log = (home / "gunicorn.log").open("ab")
        manage = [sys.executable, str(REPO / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput"], env=self.env, check=True, capture_output=True, cwd=REPO)
        token_file = home / "token"
        subprocess.run(
            [*manage, "cellar_bootstrap", "--team", "acme", "--user", "u", "--password", "pw-123456"]
            + ["--token-out", str(token_file)],
            env=self.env,
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        self.token = token_file.read_text().strip()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "cellar_server.wsgi", "--bind", f"127.0.0.1:{self.port}"]
            + ["--threads", "4", "--worker-class", "gthread", "--graceful-timeout", "10"],
            env=self.env,
            cwd=REPO / "platform",
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.home / "gunicorn.log").read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: gunicorn's graceful stop (the master drains its workers). SIGKILL: the whole
        server dies at once, master and workers (a crash, the OOM killer), mid-request."""
        if self.proc is not None and self.proc.poll() is None:
            if sig == signal.SIGKILL:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def mlflow(self, endpoint: str, **params) -> dict:
        answer = requests.get(
            f"{self.url}/t/acme/mlflow/api/2.0/mlflow/{endpoint}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        points, token = [], None
        while True:
            page = self.mlflow(
                "metrics/get-history",
                run_id=run_id,
                metric_key=key,
                max_results=5000,
                **({"page_token": token} if token else {}),
            )
            points += [(m["step"], m["value"]) for m in page.get("metrics", [])]
            token = page.get("next_page_token")
            if not token:
                return points

    def arrival_order(self, run_id: str, key: str) -> list[int]:
        """Steps in the order the database stored them (its primary key)."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute(
                "SELECT m.step FROM tracking_metric m JOIN tracking_run r ON r.id = m.run_id "
                "WHERE r.run_uuid = ? AND m.key = ? ORDER BY m.id",
                (run_id, key),
            ).fetchall()
        return [step for (step,) in rows]


@pytest.fixture
def server(tmp_path, tracking_state, monkeypatch):
    instance = CellarServer(tmp_path / "server")
    instance.start()
    monkeypatch.setenv("CELLAR_URL", instance.url)
    monkeypatch.setenv("CELLAR_TOKEN", instance.token)
    yield instance
    instance.stop(signal.SIGKILL)


POINTS = 20_000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_every_point_arrives_exactly_once_across_a_restart(server, sig):
    with cellar.start_run(experiment="restart", name="resilient") as run:
        run.log_param("lr", 0.01)
        run.set_tag("phase", "before")
        for step in range(POINTS):
            run.log_metric("loss", step * 0.001, step=step)
            if step % 100 == 0:
                time.sleep(0.002)  # a training loop: batches are in flight when the server goes
            if step == POINTS // 2:
                server.stop(sig)
                run.set_tag("phase", "during")
        time.sleep(2)
        server.start()
        run.set_tag("phase", "after")
        run.flush()

    history = server.history(run.run_id, "loss")
    assert len(history) == POINTS
    assert history == [(step, step * 0.001) for step in range(POINTS)]
    # In order: the database stored the points in the order they were logged.
    assert server.arrival_order(run.run_id, "loss") == list(range(POINTS))
    got = server.mlflow("runs/get", run_id=run.run_id)["run"]
    assert got["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in got["data"]["params"]} == {"lr": "0.01"}
    assert {t["key"]: t["value"] for t in got["data"]["tags"]}["phase"] == "after"
    assert list_folders(Path(os.environ["CELLAR_OFFLINE_DIR"])) == []  # nothing had to be spilled


def test_a_full_queue_spills_to_disk_and_drains_when_the_server_returns(server, monkeypatch, tracking_state):
    monkeypatch.setenv("CELLAR_MAX_QUEUE", "2000")
    with cellar.start_run(experiment="spill") as run:
        run.log_metric("loss", -1.0, step=-1)
        run.flush()
        server.stop()
        for step in range(10_000):
            run.log_metric("loss", float(step), step=step)
        deadline = time.monotonic() + 30
        while not list_folders(tracking_state):  # the sender, retrying, moved the backlog to disk
            assert time.monotonic() < deadline, "the queue never spilled"
            time.sleep(0.1)
        spill = list_folders(tracking_state)[0]
        assert spill.meta()["server_run_id"] == run.run_id
        # Memory stays bounded: the sender moves the backlog to disk in rounds (the folder
        # appears when the first round starts), so wait for the round that leaves it bounded.
        while len(run._batcher.queue) > 2001:
            assert time.monotonic() < deadline, f"the queue stayed at {len(run._batcher.queue)} items"
            time.sleep(0.1)
        for step in range(10_000, 12_000):
            run.log_metric("loss", float(step), step=step)
        server.start()
        run.flush()
    assert server.history(run.run_id, "loss") == [(s, float(s)) for s in range(-1, 12_000)]
    assert server.arrival_order(run.run_id, "loss") == list(range(-1, 12_000))
    assert list_folders(tracking_state) == []  # drained, so removed


def test_a_run_ending_while_the_server_is_down_is_kept_for_sync(server, monkeypatch, tracking_state, capsys):
    monkeypatch.setenv("CELLAR_FLUSH_TIMEOUT", "2")
    with cellar.start_run(experiment="late") as run:
        run.log_param("lr", 0.1)
        run.log_metric("loss", 0.0, step=0)
        run.flush()
        server.stop()
        for step in range(1, 3000):
            run.log_metric("loss", float(step), step=step)
        run.set_tag("note", "logged while down")
    # The block ended: what the server did not take waits in the offline folder, with the status.
    [folder] = list_folders(tracking_state)
    records = [r for _, r in folder.records()]
    assert records[-1]["kind"] == "end" and records[-1]["status"] == "FINISHED"
    assert sum(r["kind"] == "metric" for r in records) == 2999

    server.start()
    assert server.mlflow("runs/get", run_id=run.run_id)["run"]["info"]["status"] == "RUNNING"
    assert cli_main(["sync"]) == 0
    assert f"-> run {run.run_id}" in capsys.readouterr().out
    got = server.mlflow("runs/get", run_id=run.run_id)["run"]
    assert got["info"]["status"] == "FINISHED"
    assert {t["key"]: t["value"] for t in got["data"]["tags"]}["note"] == "logged while down"
    assert server.history(run.run_id, "loss") == [(s, float(s)) for s in range(3000)]
    assert cli_main(["sync"]) == 0
    assert "already synced" in capsys.readouterr().out
    assert len(server.history(run.run_id, "loss")) == 3000
