"""Reads for compute: pools as the compiler and dispatcher see them, their live status
(demand, workers, utilization), the scaling history and a team's usage against its quota.

Pool-side numbers about tasks come from pipelines/pools.py (the pipelines app's reads);
nothing here touches the pipelines models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from cellar.pipelines.spec import PoolOffer
from cellar_server.compute.models import WORKER_STOPPED, Pool, PoolSample, Worker
from cellar_server.pipelines import pools as pipeline_pools


def pool_list() -> QuerySet[Pool]:
    return Pool.objects.order_by("name")


def pool_for_name(*, name: str) -> Pool | None:
    return Pool.objects.filter(name=name).first()


def pool_offer(pool: Pool) -> PoolOffer:
    cpu = pool.cpu if pool.cpu else float(_cores())
    memory = pool.memory if pool.memory else pipeline_pools.machine_memory()
    return PoolOffer(name=pool.name, cpu=float(cpu), memory=memory, gpu=pool.gpus)


def pool_offer_map() -> dict[str, PoolOffer]:
    """name -> what one worker of the pool offers a step; {} when no pool is defined."""
    return {pool.name: pool_offer(pool) for pool in pool_list()}


def gpu_fallback_enabled() -> bool:
    """CELLAR_GPU_FALLBACK=1: a GPU pool may run on a machine without a GPU (tests, the demo)."""
    return bool(getattr(settings, "CELLAR_GPU_FALLBACK", False))


def worker_stale_after() -> timedelta:
    """A worker whose last heartbeat is older than this is shown as gone (its leases expire on their own)."""
    return timedelta(seconds=float(getattr(settings, "CELLAR_WORKER_STALE_S", 30)))


def workers_alive(*, pool: str | None = None, now: datetime | None = None) -> QuerySet[Worker]:
    now = now or timezone.now()
    queryset = Worker.objects.filter(last_seen__gte=now - worker_stale_after()).exclude(state=WORKER_STOPPED)
    return queryset.filter(pool=pool) if pool else queryset


@dataclass
class PoolStatus:
    pool: Pool
    queued: int = 0
    dispatched: int = 0
    running: int = 0
    workers: list[Worker] = field(default_factory=list)

    @property
    def demand(self) -> int:
        return self.queued + self.dispatched + self.running

    @property
    def desired_workers(self) -> int:
        return desired_workers(self.pool, self.demand)

    @property
    def gpu_fallback(self) -> bool:
        return any(worker.gpu_fallback for worker in self.workers)

    def as_dict(self) -> dict:
        return {
            "pool": self.pool.name,
            "queue": self.pool.queue,
            "demand": self.demand,
            "queued": self.queued,
            "dispatched": self.dispatched,
            "running": self.running,
            "workers": len(self.workers),
            "desired_workers": self.desired_workers,
            "min_workers": self.pool.min_workers,
            "max_workers": self.pool.max_workers,
            "concurrency": self.pool.concurrency,
            "gpus": self.pool.gpus,
            "gpu_fallback": self.gpu_fallback,
            "worker_list": [
                {
                    "name": w.name,
                    "host": w.host,
                    "pid": w.pid,
                    "state": w.state,
                    "current_tasks": w.current_tasks,
                    "gpu_fallback": w.gpu_fallback,
                }
                for w in self.workers
            ],
        }


def desired_workers(pool: Pool, demand: int) -> int:
    """Workers the pool should run for `demand` tasks: enough batches at once for the work, within
    [min_workers, max_workers]. A worker runs `concurrency` batches at once; the dispatcher
    spreads a backlog over several messages, so one message per worker slot is the unit."""
    wanted = math.ceil(demand / max(1, pool.concurrency))
    return max(pool.min_workers, min(pool.max_workers, wanted))


def pool_statuses(*, name: str | None = None) -> list[PoolStatus]:
    """Every pool (or one) with its demand and live workers: three queries in all."""
    pools = list(pool_list() if name is None else pool_list().filter(name=name))
    demand = pipeline_pools.pool_demand()
    alive: dict[str, list[Worker]] = {}
    for worker in workers_alive().order_by("name"):
        alive.setdefault(worker.pool, []).append(worker)
    statuses = []
    for pool in pools:
        counts = demand.get(pool.name, {})
        statuses.append(
            PoolStatus(
                pool=pool,
                queued=counts.get("queued", 0),
                dispatched=counts.get("dispatched", 0),
                running=counts.get("running", 0),
                workers=alive.get(pool.name, []),
            )
        )
    return statuses


def pool_history(*, since: timedelta = timedelta(hours=1)) -> dict[str, list[PoolSample]]:
    """pool -> its samples of the last `since`, oldest first."""
    history: dict[str, list[PoolSample]] = {}
    rows = PoolSample.objects.filter(at__gte=timezone.now() - since).order_by("at", "id")
    for sample in rows:
        history.setdefault(sample.pool, []).append(sample)
    return history


@dataclass
class TeamUsage:
    cpu_hours: float
    gpu_hours: float
    gpu_hours_quota: Decimal
    since: datetime
    by_pool: dict[str, float]

    @property
    def gpu_quota_used(self) -> float:
        quota = float(self.gpu_hours_quota)
        return 0.0 if quota <= 0 else min(1.0, self.gpu_hours / quota)


def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def team_usage(*, team, since: datetime | None = None) -> TeamUsage:
    """The team's CPU-hours and GPU-hours this month (task attempts' run time), against its quota.

    GPU-hours count the time tasks ran on a GPU pool times the pool's GPUs per worker divided by
    its concurrency (one executor per GPU); CPU-hours count task time on the other pools.
    """
    since = since or month_start()
    seconds = pipeline_pools.task_seconds_by_pool(team_id=team.id, since=since)
    pools = {pool.name: pool for pool in Pool.objects.filter(name__in=list(seconds))}
    cpu = gpu = 0.0
    for name, value in seconds.items():
        pool = pools.get(name)
        if pool is not None and pool.gpus > 0:
            gpu += value * max(1, pool.gpus // max(1, pool.concurrency)) / 3600
        else:
            cpu += value / 3600
    return TeamUsage(
        cpu_hours=cpu,
        gpu_hours=gpu,
        gpu_hours_quota=team.gpu_hours_per_month,
        since=since,
        by_pool={name: value / 3600 for name, value in seconds.items()},
    )


def fallback_tasks(*, team_id: int, limit: int = 20) -> list[dict]:
    """The team's recent task attempts run by GPU-pool workers that had no GPU (CELLAR_GPU_FALLBACK)."""
    names = Worker.objects.filter(gpu_fallback=True).values_list("name", flat=True)
    return pipeline_pools.tasks_run_by_workers(workers=names, team_id=team_id, limit=limit)


def workers_on_fallback(*, names: list[str]) -> set[str]:
    """Which of these worker ids (as task attempts record them) ran a GPU pool on the CPU."""
    return set(Worker.objects.filter(name__in=names, gpu_fallback=True).values_list("name", flat=True))


def _cores() -> int:
    import os

    return os.cpu_count() or 1
