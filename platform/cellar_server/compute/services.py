"""Writes for compute: pool edits (platform admins only), worker heartbeats, scaling samples."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cellar_server.compute import selectors
from cellar_server.compute.models import WORKER_STATES, Pool, PoolSample, Worker
from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.pools import parse_size

logger = logging.getLogger(__name__)

POOL_FIELDS = (
    "min_workers",
    "max_workers",
    "concurrency",
    "cpu",
    "memory",
    "gpus",
    "node_selector",
    "tolerations",
    "image",
)
SAMPLE_EVERY = timedelta(seconds=5)  # at most one sample per pool this often
SAMPLES_KEPT = timedelta(hours=24)
WORKERS_KEPT = timedelta(days=30)  # stopped workers stay, so tasks keep their fallback note


def _require_staff(user) -> None:
    if not (user is not None and user.is_authenticated and user.is_staff):
        raise ServiceError("staff_only", "Only platform admins can change pools.", status_code=403)


def _clean(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(POOL_FIELDS)
    if unknown:
        raise ServiceError("invalid_pool", f"Unknown pool field(s): {', '.join(sorted(unknown))}.")
    clean = dict(changes)
    if "memory" in clean:
        try:
            clean["memory"] = parse_size(clean["memory"])
        except ValueError as exc:
            raise ServiceError("invalid_pool", f"memory: {exc}") from None
    for name in ("min_workers", "max_workers", "concurrency", "gpus"):
        if name in clean:
            value = clean[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ServiceError("invalid_pool", f"{name} must be a whole number, 0 or more; got {value!r}.")
    if "cpu" in clean and clean["cpu"] is not None:
        if isinstance(clean["cpu"], bool) or not isinstance(clean["cpu"], int | float) or clean["cpu"] <= 0:
            raise ServiceError("invalid_pool", f"cpu must be a positive number of cores or null; got {clean['cpu']!r}.")
    if "node_selector" in clean and not (
        isinstance(clean["node_selector"], dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in clean["node_selector"].items())
    ):
        raise ServiceError("invalid_pool", 'node_selector must be an object of strings, like {"gpu": "a100"}.')
    if "tolerations" in clean and not (
        isinstance(clean["tolerations"], list) and all(isinstance(t, dict) for t in clean["tolerations"])
    ):
        raise ServiceError("invalid_pool", "tolerations must be a list of Kubernetes toleration objects.")
    if "image" in clean and not isinstance(clean["image"], str):
        raise ServiceError("invalid_pool", "image must be a string (empty: the deployment's default).")
    return clean


def _validate(pool: Pool) -> None:
    if pool.concurrency < 1:
        raise ServiceError("invalid_pool", "concurrency must be at least 1.")
    if pool.min_workers > pool.max_workers:
        raise ServiceError(
            "invalid_pool", f"min_workers ({pool.min_workers}) cannot exceed max_workers ({pool.max_workers})."
        )
    try:
        pool.full_clean(exclude=["created_at", "updated_at"], validate_unique=False)
    except ValidationError as exc:
        raise ServiceError("invalid_pool", "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items()))


@transaction.atomic
def pool_create(*, user, name: str, **fields: Any) -> Pool:
    _require_staff(user)
    if Pool.objects.filter(name=name).exists():
        raise ServiceError("pool_exists", f"A pool named '{name}' already exists.", status_code=409)
    pool = Pool(name=name, **_clean(fields))
    _validate(pool)
    pool.save()
    logger.info("compute: %s created pool %s", user.username, name)
    return pool


@transaction.atomic
def pool_update(*, user, pool: Pool, **changes: Any) -> Pool:
    _require_staff(user)
    clean = _clean(changes)
    for name, value in clean.items():
        setattr(pool, name, value)
    _validate(pool)
    pool.updated_at = timezone.now()
    pool.save(update_fields=[*clean, "updated_at"])
    logger.info("compute: %s changed pool %s: %s", user.username, pool.name, sorted(clean))
    return pool


def worker_heartbeat_record(*, report: dict[str, Any]) -> Worker:
    """Upsert the worker a heartbeat describes (worker_status.py sends it); sample its pool."""
    now = timezone.now()
    state = report.get("state") or "running"
    if state not in dict(WORKER_STATES):
        raise ServiceError("invalid_worker_report", f"state must be one of {', '.join(dict(WORKER_STATES))}.")
    fields = {
        "pool": report["pool"],
        "host": report["host"],
        "pid": report.get("pid") or 0,
        "state": state,
        "concurrency": report.get("concurrency") or 1,
        "gpus": report.get("gpus") or [],
        "gpu_fallback": bool(report.get("gpu_fallback")),
        "current_tasks": report.get("current_tasks") or 0,
        "cpu_percent": report.get("cpu_percent"),
        "memory_percent": report.get("memory_percent"),
        "memory_rss": report.get("memory_rss"),
        "last_seen": now,
    }
    worker, created = Worker.objects.update_or_create(name=report["worker"], defaults=fields)
    if created and report.get("started_at"):
        worker.started_at = report["started_at"]
        worker.save(update_fields=["started_at"])
    pool_samples_record(now=now, pools=[worker.pool])
    return worker


def pool_samples_record(*, now=None, pools: list[str] | None = None, force: bool = False) -> int:
    """One sample (workers alive, demand, running) per pool not sampled in the last few seconds.

    Called by worker heartbeats and by the demand endpoint the supervisor and KEDA poll, so the
    history fills while anything watches the pools; old samples are pruned here too.
    """
    now = now or timezone.now()
    recent = set(PoolSample.objects.filter(at__gte=now - SAMPLE_EVERY).values_list("pool", flat=True))
    statuses = [s for s in selectors.pool_statuses() if pools is None or s.pool.name in pools]
    fresh = [
        PoolSample(pool=s.pool.name, at=now, workers=len(s.workers), demand=s.demand, running=s.running)
        for s in statuses
        if force or s.pool.name not in recent
    ]
    if fresh:
        PoolSample.objects.bulk_create(fresh)
        PoolSample.objects.filter(at__lt=now - SAMPLES_KEPT).delete()
        Worker.objects.filter(last_seen__lt=now - WORKERS_KEPT).delete()
    return len(fresh)


def pools_ensure_defaults() -> list[Pool]:
    """Create the default pools that are missing (compute/defaults.py); existing ones stay as edited."""
    from cellar_server.compute.defaults import DEFAULT_POOLS

    return [Pool.objects.get_or_create(name=d["name"], defaults=d)[0] for d in DEFAULT_POOLS]
