"""Compute: pools (platform-wide, edited by platform admins), the workers that report
themselves, and a small time series of each pool's workers and demand (docs/compute.md).

Pools are not team data: every team's steps run on them, so they are plain models, read by
everyone and written by staff through services.py. Workers and samples are machine state,
not team data either.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

POOL_NAME = RegexValidator(r"^[a-z0-9][a-z0-9_-]{0,62}$", "lowercase letters, digits, - and _ (at most 63)")


class Pool(models.Model):
    """A named set of workers consuming the broker queue `pool.<name>`.

    `cpu`, `memory` and `gpus` are what one worker offers (the compiler checks a step's
    `cpu:`, `memory:`, `gpu:` tags against them); null cpu / memory mean "this machine's".
    `min_workers`..`max_workers` bound the autoscaler; `concurrency` is how many task
    batches one worker runs at once (and, on Kubernetes, the demand one replica absorbs).
    """

    name = models.CharField(max_length=63, unique=True, validators=[POOL_NAME])
    min_workers = models.PositiveIntegerField(default=0)
    max_workers = models.PositiveIntegerField(default=1)
    concurrency = models.PositiveIntegerField(default=1)
    cpu = models.FloatField(null=True, blank=True)  # cores per worker; null = the machine's
    memory = models.BigIntegerField(null=True, blank=True)  # bytes per worker; null = not limited
    gpus = models.PositiveIntegerField(default=0)  # GPUs per worker; > 0 makes it a GPU pool
    # Kubernetes (deploy/k8s): where the pool's Deployment schedules and which image it runs.
    node_selector = models.JSONField(default=dict, blank=True)
    tolerations = models.JSONField(default=list, blank=True)
    image = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return f"pool.{self.name}"

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0


WORKER_RUNNING, WORKER_DRAINING, WORKER_STOPPED = "running", "draining", "stopped"
WORKER_STATES = [(s, s) for s in (WORKER_RUNNING, WORKER_DRAINING, WORKER_STOPPED)]


class Worker(models.Model):
    """A pool agent as its last heartbeat described it (cellar_worker/worker_status.py).

    `name` is the agent's worker id, the same string task attempts record in `worker`, so a
    task's attempt tells which worker (and whether it ran under the GPU fallback).
    """

    name = models.CharField(max_length=200, unique=True)
    pool = models.CharField(max_length=63)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=WORKER_STATES, default=WORKER_RUNNING)
    concurrency = models.PositiveIntegerField(default=1)
    gpus = models.JSONField(default=list)  # [{"index", "name", "memory_total", "memory_used", "utilization"}]
    gpu_fallback = models.BooleanField(default=False)  # a GPU pool's worker running on the CPU
    current_tasks = models.PositiveIntegerField(default=0)
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_percent = models.FloatField(null=True, blank=True)
    memory_rss = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["pool", "last_seen"], name="worker_pool_seen")]

    def __str__(self) -> str:
        return self.name


class PoolSample(models.Model):
    """One point of a pool's scaling history: workers alive vs demand, written at most every
    few seconds per pool (services.pool_samples_record) and pruned after a day."""

    pool = models.CharField(max_length=63)
    at = models.DateTimeField(default=timezone.now)
    workers = models.PositiveIntegerField(default=0)
    demand = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["pool", "at"], name="pool_sample_at")]

    def __str__(self) -> str:
        return f"{self.pool}@{self.at:%H:%M:%S}: {self.workers} workers, demand {self.demand}"
