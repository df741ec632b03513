"""Environment-driven configuration shared by settings, Celery and commands.

Everything has a safe local default (the embedded single-machine mode); the
same variables switch to PostgreSQL, an external Redis and S3 in production.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# A unix socket path longer than this is rejected by the kernel (sun_path).
_MAX_SOCKET_PATH = 100


def cellar_home() -> Path:
    """Where the embedded defaults keep their state (database, artifacts, redis)."""
    raw = os.environ.get("CELLAR_HOME", "var")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def embedded_redis_socket() -> Path:
    """The unix socket of the embedded Redis: its own, so it never collides.

    Falls back to a short path under the temp dir when CELLAR_HOME is too deep
    for a socket path; the name is derived from CELLAR_HOME so two instances
    never share one.
    """
    sock = cellar_home() / "redis" / "redis.sock"
    if len(str(sock)) <= _MAX_SOCKET_PATH:
        return sock
    digest = hashlib.sha256(str(cellar_home()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"cellar-{digest}" / "redis.sock"


def redis_url() -> str:
    """REDIS_URL, else the embedded Redis on its unix socket (redis-py form)."""
    return os.environ.get("REDIS_URL") or f"unix://{embedded_redis_socket()}"


def celery_broker_url(url: str | None = None) -> str:
    """Kombu spells a redis unix socket `redis+socket://`; redis-py `unix://`."""
    url = url or redis_url()
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{cellar_home() / 'cellar.sqlite3'}"


def artifact_store_url() -> str:
    return os.environ.get("ARTIFACT_STORE_URL") or f"file://{cellar_home() / 'artifacts'}"


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default
