"""Pools and their environments, as the promote check and the dispatcher see them; and the
pipeline-side reads the compute app needs (demand per pool, task-hours per team).

The pools are the compute app's `Pool` rows (cellar_server/compute, default `cpu` and `gpu`,
edited by platform admins). The `CELLAR_POOLS` setting, when set, overrides them whole: a
deployment (or a test) can pin its pools without touching the database. With neither, the
single `cpu` pool offers this machine's cores and memory. Every pool's environment is this
server interpreter's: honest on one machine, where `make up` runs the pool agents in the same
virtual environment as the web process.

`CELLAR_POOLS` is a JSON object, name -> what one task may get there:

    {"cpu": {"cpu": 8, "memory": "32Gi"}, "gpu": {"cpu": 8, "memory": "64Gi", "gpu": 1}}

`memory` is bytes or a size written as in a `memory:` cell tag (`512Mi`, `32Gi`, `2G`);
null or absent means not limited.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum

from cellar.pipelines.environment import current_environment
from cellar.pipelines.spec import Environment, PoolOffer
from cellar.pipelines.tags import parse_size as parse_size_text

DEFAULT_POOL = "cpu"


def parse_size(value: object) -> int | None:
    """Bytes from an int or a size like '32Gi' (the `memory:` tag's grammar); None = not limited."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return int(value)
    try:
        return parse_size_text(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a size like 32Gi or 512Mi") from None


def machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return None


def default_pools() -> dict[str, PoolOffer]:
    return {DEFAULT_POOL: PoolOffer(name=DEFAULT_POOL, cpu=float(os.cpu_count() or 1), memory=machine_memory(), gpu=0)}


def parse_pools(raw: str | dict | None) -> dict[str, PoolOffer]:
    """The pools a `CELLAR_POOLS` value describes; raises ImproperlyConfigured saying what is wrong."""
    if raw in (None, "", {}):
        return default_pools()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"CELLAR_POOLS is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise ImproperlyConfigured('CELLAR_POOLS must be a JSON object like {"cpu": {"cpu": 8, "memory": "32Gi"}}.')
    offers = {}
    for name, spec in raw.items():
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", str(name)):
            raise ImproperlyConfigured(f"CELLAR_POOLS: '{name}' is not a pool name (lowercase letters, digits, - _).")
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}'] must be an object with cpu, memory and gpu.")
        unknown = set(spec) - {"cpu", "memory", "gpu"}
        if unknown:
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}'] has unknown keys: {', '.join(sorted(unknown))}.")
        try:
            cpu = float(spec.get("cpu", os.cpu_count() or 1))
            gpu = int(spec.get("gpu", 0))
            memory = parse_size(spec.get("memory"))
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}']: {exc}") from None
        if cpu <= 0 or gpu < 0:
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}']: cpu must be positive and gpu not negative.")
        offers[name] = PoolOffer(name=name, cpu=cpu, memory=memory, gpu=gpu)
    return offers


def pools_override() -> str | dict | None:
    """The CELLAR_POOLS setting when set (it overrides the compute app's pools), else None."""
    raw = getattr(settings, "CELLAR_POOLS", None)
    return None if raw in (None, "", {}) else raw


def pool_offers() -> dict[str, PoolOffer]:
    """name -> PoolOffer for every pool this platform runs (CELLAR_POOLS, else the compute app's
    pools, else this machine as the one `cpu` pool)."""
    raw = pools_override()
    if raw is not None:
        return parse_pools(raw)
    from cellar_server.compute.selectors import pool_offer_map

    return pool_offer_map() or default_pools()


def pool_capacity(pool: str) -> int | None:
    """Tasks the pool can run at once at its largest (max workers x concurrency), from the compute
    app's pool; None when it has no such pool. What the dispatcher's window should be sized on for
    an autoscaled pool (engine/settings.py pool_workers reads CELLAR_ENGINE_POOL_WORKERS today)."""
    from cellar_server.compute.selectors import pool_for_name

    found = pool_for_name(name=pool)
    return None if found is None else max(1, found.max_workers * found.concurrency)


# --- reads for the compute app (demand, usage); the pipelines models stay behind this module ---


def pool_demand() -> dict[str, dict[str, int]]:
    """pool -> {"queued", "dispatched", "running"} task counts: the work a pool must absorb.

    From the database, not the broker: a Redis list misses micro-batched items and work in flight.
    One indexed GROUP BY (task_ready covers state, pool).
    """
    from cellar_server.pipelines.models import TASK_DISPATCHED, TASK_QUEUED, TASK_RUNNING, Task

    states = (TASK_QUEUED, TASK_DISPATCHED, TASK_RUNNING)
    demand: dict[str, dict[str, int]] = {}
    rows = Task.all_teams.filter(state__in=states).order_by().values("pool", "state").annotate(n=Count("id"))
    for row in rows:
        demand.setdefault(row["pool"], dict.fromkeys(states, 0))[row["state"]] = row["n"]
    return demand


def task_seconds_by_pool(*, team_id: int, since: datetime) -> dict[str, float]:
    """pool -> seconds the team's task attempts ran there since `since` (ended attempts, plus
    running ones up to now), for usage against quota."""
    from django.utils import timezone

    from cellar_server.pipelines.models import TaskAttempt

    now = timezone.now()
    seconds: dict[str, float] = {}
    ended = (
        TaskAttempt.all_teams.filter(team_id=team_id, started_at__isnull=False, ended_at__gte=since)
        .order_by()
        .values("task__pool")
        .annotate(total=Sum(ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())))
    )
    for row in ended:
        if row["total"] is not None:
            seconds[row["task__pool"]] = seconds.get(row["task__pool"], 0.0) + row["total"].total_seconds()
    running = TaskAttempt.all_teams.filter(team_id=team_id, started_at__isnull=False, ended_at__isnull=True)
    for pool, started in running.values_list("task__pool", "started_at"):
        seconds[pool] = seconds.get(pool, 0.0) + max(0.0, (now - max(started, since)).total_seconds())
    return seconds


def tasks_run_by_workers(*, workers: Iterable[str], team_id: int, limit: int = 20) -> list[dict]:
    """The team's latest task attempts run by these workers (the GPU fallback's record), newest first."""
    from cellar_server.pipelines.models import TaskAttempt

    names = list(workers)
    if not names:
        return []
    rows = (
        TaskAttempt.all_teams.filter(team_id=team_id, worker__in=names)
        .select_related("task", "task__run", "task__run__pipeline", "team")
        .order_by("-dispatched_at")[:limit]
    )
    return [
        {
            "team": attempt.team.slug,
            "pipeline": attempt.task.run.pipeline.name,
            "run": attempt.task.run.number,
            "step": attempt.task.step,
            "index": attempt.task.index,
            "attempt": attempt.number,
            "state": attempt.state,
            "worker": attempt.worker,
            "pool": attempt.task.pool,
            "at": attempt.started_at or attempt.dispatched_at,
        }
        for attempt in rows
    ]


def pool_environment(pool: str, modules: Iterable[str] = ()) -> Environment:
    """What pool `pool` has installed, with `modules` resolved to their distributions.

    One machine: the pool agents run in this interpreter's virtual environment, so its lock
    is the pool's (see the module docstring for what replaces this).
    """
    return current_environment(modules)
