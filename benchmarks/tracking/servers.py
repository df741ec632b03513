"""Start Cellar (gunicorn, as in production) and `mlflow server`, each on its own bench-only database.

Every process is started in its own session (process group) and every temporary directory and
database is registered with a `Cleanup` stack, which the benchmark unwinds in a `finally`, so
Ctrl-C, SIGTERM or an exception leaves no server and no database behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CELLAR_BIN = REPO / ".venv" / "bin"
MLFLOW_BIN = REPO / ".venv-mlflow" / "bin"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/14"
TEAM, USER, PASSWORD = "acme", "bench", "bench-pass-1"


class Cleanup:
    """A stack of undo actions, run last-in first-out; each runs even if an earlier one fails."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, label: str, action: Callable[[], None]) -> None:
        self._actions.append((label, action))

    def run(self) -> None:
        while self._actions:
            label, action = self._actions.pop()
            try:
                action()
            except Exception as exc:  # keep unwinding: one failure must not leak the rest
                print(f"cleanup: {label} failed: {exc}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tmp(cleanup: Cleanup, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    cleanup.push(f"remove {path}", lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group we started (the server and its workers), SIGKILL what lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # workers can outlive their parent: sweep the group either way
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log {log}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s; log {log}:\n{log.read_text()[-3000:]}")


# --- databases -----------------------------------------------------------------------------


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_DSN)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(sql)
    finally:
        conn.close()


def create_pg_database(cleanup: Cleanup, name: str) -> str:
    """A bench-only PostgreSQL database, dropped on exit. Returns its URL (without the scheme)."""
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_admin(f'CREATE DATABASE "{name}"')
    cleanup.push(f"drop database {name}", lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return f"postgres@127.0.0.1:5432/{name}"


def psycopg2_shim(cleanup: Cleanup) -> Path:
    """A folder exposing Cellar's psycopg2 to `mlflow server`.

    requirements-mlflow.txt does not install a PostgreSQL driver, and MLflow's SQLAlchemy store
    needs one; both venvs run the same CPython 3.11, so the bench puts a folder with links to
    .venv's psycopg2 on the MLflow server's PYTHONPATH instead of changing either venv.
    """
    site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    shim = make_tmp(cleanup, "mlflow-pg-shim-")
    for name in ("psycopg2", "psycopg2_binary.libs"):
        if (site / name).exists():
            (shim / name).symlink_to(site / name)
    return shim


# --- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str  # MLFLOW_TRACKING_URI
    db_url: str  # what populate.py and the in-process runner connect to
    env: dict[str, str]  # what the in-process runner needs on top of os.environ
    token: str | None = None
    proc: subprocess.Popen | None = None
    start_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def cellar_env(tmp: Path, database_url: str) -> dict[str, str]:
    return {
        "CELLAR_HOME": str(tmp / "home"),
        "DATABASE_URL": database_url,
        "ARTIFACT_STORE_URL": f"file://{tmp / 'artifacts'}",
        "REDIS_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "cellar_server.settings",
    }


def prepare_cellar(cleanup: Cleanup, engine: str) -> tuple[Path, dict[str, str], str]:
    """A fresh Cellar home and database: migrate, then cellar_bootstrap. Returns (tmp, env, token)."""
    tmp = make_tmp(cleanup, "cellar-bench-")
    if engine == "sqlite":
        database_url = f"sqlite:///{tmp / 'db.sqlite3'}"
    else:
        database_url = "postgres://" + create_pg_database(cleanup, f"cellar_bench_{os.getpid()}")
    extra_env = cellar_env(tmp, database_url)
    env = {**os.environ, **extra_env}
    env.pop("PYTHONPATH", None)
    python = str(CELLAR_BIN / "python")
    token_file = tmp / "token"
    for cmd in (
        [python, "manage.py", "migrate", "--noinput", "-v", "0"],
        [python, "manage.py", "cellar_bootstrap", "--team", TEAM, "--user", USER, "--password", PASSWORD,
         "--token-out", str(token_file)],
    ):  # fmt: skip
        done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:3])} failed:\n{done.stdout}\n{done.stderr}")
    return tmp, extra_env, token_file.read_text().strip()


def start_cellar(cleanup: Cleanup, engine: str) -> Server:
    started = time.monotonic()
    tmp, extra_env, token = prepare_cellar(cleanup, engine)
    env = {**os.environ, **extra_env}
    env.pop("PYTHONPATH", None)
    port = free_port()
    log = tmp / "gunicorn.log"
    proc = _spawn(
        [str(CELLAR_BIN / "gunicorn"), "cellar_server.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "4", "--worker-class", "gthread", "--log-level", "warning"],
        env, REPO, log,
    )  # fmt: skip
    server = Server(
        name="Cellar",
        url=f"http://127.0.0.1:{port}/t/{TEAM}/mlflow",
        db_url=extra_env["DATABASE_URL"],
        env=extra_env,
        token=token,
        proc=proc,
    )
    cleanup.push("stop Cellar", server.stop)
    wait_http(f"{server.url}/health", proc, log, timeout=120)
    server.start_seconds = time.monotonic() - started
    return server


def mlflow_server_env(backend_uri: str, artifacts: Path) -> dict[str, str]:
    """What `mlflow server --backend-store-uri B --artifacts-destination A` hands its workers
    (mlflow/server/__init__.py::_run_server): the in-process runner sets the same."""
    return {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_BACKEND_STORE_URI": backend_uri,
        "_MLFLOW_SERVER_FILE_STORE": backend_uri,
        "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(artifacts),
    }


def start_mlflow(cleanup: Cleanup, engine: str) -> Server:
    tmp = make_tmp(cleanup, "mlflow-bench-")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PYTHONPATH", None)
    if engine == "sqlite":
        backend = f"sqlite:///{tmp / 'mlflow.sqlite'}"
        db_url = backend
    else:
        location = create_pg_database(cleanup, f"mlflow_bench_{os.getpid()}")
        backend = f"postgresql+psycopg2://{location}"  # SQLAlchemy 2.1 defaults to psycopg 3
        db_url = f"postgres://{location}"
        env["PYTHONPATH"] = str(psycopg2_shim(cleanup))
    artifacts = tmp / "mlart"
    port = free_port()
    log = tmp / "mlflow.log"
    started = time.monotonic()
    proc = _spawn(
        [str(MLFLOW_BIN / "mlflow"), "server", "--backend-store-uri", backend, "--artifacts-destination",
         str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env, tmp, log,
    )  # fmt: skip
    extra_env = mlflow_server_env(backend, artifacts)
    if "PYTHONPATH" in env:
        extra_env["PYTHONPATH"] = env["PYTHONPATH"]
    server = Server(name="MLflow", url=f"http://127.0.0.1:{port}", db_url=db_url, env=extra_env, proc=proc)
    cleanup.push("stop MLflow", server.stop)
    wait_http(f"{server.url}/health", proc, log, timeout=300)
    server.start_seconds = time.monotonic() - started
    return server
