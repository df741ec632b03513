"""The pool agent's Celery app. JSON messages only; no Django, no database.

The broker URL comes from CELLAR_BROKER_URL or REDIS_URL (redis-py's
`unix://` socket form is translated to kombu's `redis+socket://`).

Delivery settings (docs/workers.md): late acknowledgement, rejected back to the queue when
the worker is lost, prefetch 1, and a Redis visibility timeout from
CELLAR_BROKER_VISIBILITY_TIMEOUT (3600 s), longer than the engine's claim grace. None of
them decides what runs: the engine's leases do (`cellar_worker.batches`).
"""

from __future__ import annotations

import os
import platform
import socket
import sys

from celery import Celery

from cellar_worker import config


def broker_url() -> str:
    url = os.environ.get("CELLAR_BROKER_URL") or os.environ.get("REDIS_URL")
    if not url:
        raise SystemExit("cellar-worker: set REDIS_URL (or CELLAR_BROKER_URL) to the broker Cellar uses")
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


def pool_queue(pool: str) -> str:
    return f"pool.{pool}"


app = Celery("cellar_worker", include=["cellar_worker.agent"])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": config.visibility_timeout()},
    broker_connection_retry_on_startup=True,
    task_default_queue=pool_queue(os.environ.get("CELLAR_POOL", "cpu")),
)


@app.task(name="cellar.pool.ping")
def ping() -> dict:
    """Answer who is consuming this pool: a liveness check for operators and tests."""
    return {
        "pool": os.environ.get("CELLAR_POOL", "cpu"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "django_loaded": "django" in sys.modules,
        "database_url_set": bool(os.environ.get("DATABASE_URL")),
    }
