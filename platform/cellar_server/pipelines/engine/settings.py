"""The engine's knobs, read from Django settings at call time so a test's `settings` fixture
(or an operator's environment variable) takes effect without a restart of the import graph.

Every value has an environment variable (CELLAR_ENGINE_*) and a safe single-machine default in
cellar_server/settings.py; the getattr defaults below are the same, for settings modules that
predate them.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _number(name: str, default: float) -> float:
    value = getattr(settings, name, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name} must be a number of seconds or a count; got {value!r}.") from None
    if value < 0:
        raise ImproperlyConfigured(f"{name} must not be negative; got {value!r}.")
    return value


def claim_grace() -> timedelta:
    """How long a dispatched task may wait for its first claim before the reconciler asks the
    broker whether its message still exists (a Redis restart without persistence loses it)."""
    return timedelta(seconds=_number("CELLAR_ENGINE_CLAIM_GRACE", 120))


def lease_ttl() -> timedelta:
    """How long a claim or heartbeat keeps a running task's lease alive (agents beat every ~5 s)."""
    return timedelta(seconds=_number("CELLAR_ENGINE_LEASE_TTL", 30))


def max_lost() -> int:
    """Attempts a task may lose with its worker (or its message) before it fails: these do not
    consume the step's `retry:` budget, but a task that kills every worker must end."""
    return max(1, int(_number("CELLAR_ENGINE_MAX_LOST", 3)))


def retry_backoff(attempt: int) -> timedelta:
    """Wait before a user-error retry: 2^attempt seconds, capped."""
    cap = _number("CELLAR_ENGINE_RETRY_BACKOFF_CAP", 300)
    return timedelta(seconds=min(2 ** max(0, min(attempt, 30)), cap))


def max_batch(pool: str) -> int:
    """The most tasks one broker message of `pool` carries (micro-batching).

    CELLAR_ENGINE_MAX_BATCH: an integer for every pool or JSON per pool, {"cpu": 200, "gpu": 1}
    (a pool whose steps run for minutes gains nothing from batching and loses fairness: a
    message waits behind the whole batch before it). A pool it does not name gets 200.
    """
    return _per_pool("CELLAR_ENGINE_MAX_BATCH", pool, 200)


def window_factor() -> int:
    """Messages in flight per pool worker: one running and (factor - 1) waiting keeps every worker
    busy while leaving the rest of the backlog in the database, where it can still be reordered
    fairly (what is already in Redis cannot)."""
    return max(1, int(_number("CELLAR_ENGINE_WINDOW_FACTOR", 2)))


def batch_seconds() -> float:
    """How long one message's tasks should take together (CELLAR_ENGINE_BATCH_SECONDS, 1 s): a
    message is sized on its step's measured task time, so trivial tasks travel 200 at a time
    while tasks of 50 ms travel 20, and another team's work never waits long behind a message."""
    return max(0.01, _number("CELLAR_ENGINE_BATCH_SECONDS", 1.0))


def probe_batch() -> int:
    """Tasks per message while a step's task time is unknown (no task of it finished in the run
    yet): CELLAR_ENGINE_PROBE_BATCH, 10. The first results measure it."""
    return max(1, int(_number("CELLAR_ENGINE_PROBE_BATCH", 10)))


def dispatch_debounce() -> float:
    """Seconds a dispatch request waits before it runs (CELLAR_ENGINE_DISPATCH_DEBOUNCE, 0).
    Requests coalesce without it: while one waits in the control queue (a Redis key says so),
    others are dropped. A wait only adds latency to every step of every run (five steps: a
    quarter of a second at 50 ms), so it is off unless an operator wants fewer, later dispatches."""
    return max(0.0, _number("CELLAR_ENGINE_DISPATCH_DEBOUNCE", 0))


def reconcile_interval() -> float:
    return max(1.0, _number("CELLAR_ENGINE_RECONCILE_INTERVAL", 5))


def schedules_interval() -> float:
    return max(1.0, _number("CELLAR_ENGINE_SCHEDULES_INTERVAL", 15))


def pool_workers(pool: str) -> int:
    """How many tasks the pool's agents run at once (their total concurrency).

    CELLAR_ENGINE_POOL_WORKERS is an integer for every pool or a JSON object per pool,
    {"cpu": 8, "gpu": 2}. Unset (or a pool it does not name): the pool's capacity at its largest
    in the compute app (max workers x concurrency), since an autoscaled pool grows to it; 1 for a
    pool the compute app does not know.
    """
    from cellar_server.pipelines.pools import pool_capacity

    raw = getattr(settings, "CELLAR_ENGINE_POOL_WORKERS", "")
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                raw = json.loads(raw)
            except ValueError:
                pass  # _per_pool says what is wrong with it
    if raw in ("", None) or (isinstance(raw, dict) and pool not in raw):
        return pool_capacity(pool) or 1
    return _per_pool("CELLAR_ENGINE_POOL_WORKERS", pool, 1)


def _per_pool(name: str, pool: str, default: int) -> int:
    raw = getattr(settings, name, default)
    if isinstance(raw, str):
        text = raw.strip() or str(default)
        try:
            raw = json.loads(text)
        except ValueError:
            raise ImproperlyConfigured(
                f'{name} must be an integer or a JSON object per pool like {{"cpu": 8}}; got {text!r}.'
            ) from None
    if isinstance(raw, dict):
        raw = raw.get(pool, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 1:
        raise ImproperlyConfigured(f"{name}: pool '{pool}' needs a positive count; got {raw!r}.")
    return int(raw)


def api_url() -> str:
    """Where pool agents answer (claims, heartbeats, results): sent in every batch."""
    return str(getattr(settings, "CELLAR_API_URL", "") or "http://127.0.0.1:8000").rstrip("/")
