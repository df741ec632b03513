"""The reconciler: makes the database's picture of work in flight true again (beat, every ~5 s,
and once when a control worker starts).

1. **Lost workers.** A running task whose lease expired (no heartbeat for the lease TTL: its
   agent or executor died) -> its attempt `lost`, the task requeued without consuming a user
   retry, up to CELLAR_ENGINE_MAX_LOST (engine.results.task_requeue).
2. **Lost messages.** A dispatched task nobody claimed within the claim grace: if its message is
   still in the broker (waiting in `pool.<name>`, or delivered and unacknowledged) it is only
   late, and keeps its lease for another grace; if not (Redis restarted without persistence, a
   publish failed after commit) its attempt is lost and the task requeued, then dispatched again
   below with a new lease. The old message, should it ever reappear, carries a stale lease and
   is refused at claim.
3. **Stalled runs.** An open run with nothing queued or in flight (its last result was handled
   by a process that died before advancing it) is advanced: its ready tasks are created, or it
   is closed (engine.advance.run_advance).
4. **Dispatch** every pool, which also hands out the tasks requeued above.

Every change re-checks the rows under their locks (task_requeue and run_advance lock the run, then
its tasks), so reconcilers in several control workers, and claims, heartbeats and results arriving
meanwhile, never act twice on the same attempt: whoever comes second finds the lease moved on.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import redis
from django.db.models import Exists, OuterRef
from django.utils import timezone

from cellar_server.pipelines.engine import settings as engine_settings
from cellar_server.pipelines.engine.dispatch import batch_from_message, broker_redis, dispatch_all, pool_queue
from cellar_server.pipelines.models import (
    RUN_QUEUED,
    RUN_RUNNING,
    TASK_DISPATCHED,
    TASK_IN_FLIGHT,
    TASK_QUEUED,
    TASK_RUNNING,
    PipelineRun,
    Task,
)

logger = logging.getLogger(__name__)

PER_PASS = 2000  # tasks (or runs) one pass handles; the next beat takes the rest
# Inspecting the broker reads every waiting message of the pool. The window keeps that to a few
# messages per worker; a list longer than this means something else fills it: do not trust it.
MAX_INSPECTED = 20_000
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered, not yet acknowledged messages


def reconcile(*, now: datetime | None = None) -> dict[str, int]:
    """One reconcile pass. -> {"lost", "unclaimed_requeued", "unclaimed_waiting", "runs_advanced", "dispatched"}"""
    now = now or timezone.now()
    counts = {
        "lost": requeue_expired_leases(now=now),
        **requeue_unclaimed(now=now),
        "runs_advanced": advance_stalled_runs(),
    }
    counts["dispatched"] = dispatch_all()
    if any(counts.values()):
        logger.info("engine: reconciled %s", counts)
    return counts


def _requeue(task_id: int, *, state: str, lease: str) -> bool:
    """Requeue one task as lost (engine.results.task_requeue), unless it moved on meanwhile.

    No lock is taken here: task_requeue locks the run, then the task (the order every writer of
    both uses), and re-checks under those locks that the task is still in flight with this lease
    and that the lease is still expired; a claim or heartbeat that won the race is left alone.
    """
    from cellar_server.pipelines.engine.results import task_requeue

    task = Task.all_teams.filter(pk=task_id, state=state, lease=lease).first()
    if task is None:
        return False
    # "lost" is the attempt's final state: the worker (or the message that would reach one) is gone.
    return task_requeue(task=task, reason="lost", consume_retry=False) != state


def requeue_expired_leases(*, now: datetime) -> int:
    """Running tasks whose lease expired: their worker is gone."""
    rows = Task.all_teams.filter(state=TASK_RUNNING, lease_expires_at__lt=now).values_list("id", "lease")
    return sum(_requeue(task_id, state=TASK_RUNNING, lease=lease) for task_id, lease in rows[:PER_PASS])


def requeue_unclaimed(*, now: datetime) -> dict[str, int]:
    """Dispatched tasks unclaimed past the claim grace: requeued if their message is gone."""
    rows = list(
        Task.all_teams.filter(state=TASK_DISPATCHED, lease_expires_at__lt=now).values_list("id", "pool", "lease")[
            :PER_PASS
        ]
    )
    if not rows:
        return {"unclaimed_requeued": 0, "unclaimed_waiting": 0}
    waiting = leases_in_broker(sorted({pool for _id, pool, _lease in rows}))
    late = [task_id for task_id, _pool, lease in rows if waiting is not None and lease in waiting]
    if late:
        # Still queued behind other work: only late. Look again one grace from now.
        Task.all_teams.filter(pk__in=late, state=TASK_DISPATCHED, lease_expires_at__lt=now).update(
            lease_expires_at=now + engine_settings.claim_grace()
        )
    requeued = sum(
        _requeue(task_id, state=TASK_DISPATCHED, lease=lease)
        for task_id, _pool, lease in rows
        if waiting is None or lease not in waiting
    )
    return {"unclaimed_requeued": requeued, "unclaimed_waiting": len(late)}


def leases_in_broker(pools: list[str]) -> set[str] | None:
    """Leases of the batches waiting in `pool.<name>` or delivered and unacknowledged.

    None when the broker cannot be inspected (not Redis, unreachable, implausibly long lists):
    then every unclaimed task past its grace is treated as lost, which fencing keeps safe.
    """
    client = broker_redis()
    if client is None:
        return None
    try:
        raw: list[Any] = []
        for pool in pools:
            if client.llen(pool_queue(pool)) > MAX_INSPECTED:
                return None
            raw.extend(client.lrange(pool_queue(pool), 0, -1))
        if client.hlen(UNACKED_KEY) > MAX_INSPECTED:
            return None
        # An unacked entry is [message, exchange, routing_key].
        raw.extend(json.loads(value)[0] for value in client.hvals(UNACKED_KEY))
    except (redis.RedisError, ValueError, IndexError, TypeError) as exc:
        logger.warning("engine: could not inspect the broker (%s); unclaimed tasks count as lost", exc)
        return None
    leases: set[str] = set()
    for message in raw:
        try:
            batch = batch_from_message(message)
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # not one of ours, or unreadable: it cannot carry a lease we issued
        if batch:
            leases.update(item.get("lease", "") for item in batch.get("tasks", []))
    return leases


def advance_stalled_runs() -> int:
    """Open runs with nothing queued or in flight: advance (create ready tasks) or close them."""
    from cellar_server.pipelines.engine.advance import run_advance

    busy = Task.all_teams.filter(run=OuterRef("pk"), state__in=(TASK_QUEUED, *TASK_IN_FLIGHT))
    open_runs = PipelineRun.all_teams.filter(state__in=(RUN_QUEUED, RUN_RUNNING))
    stalled = open_runs.exclude(Exists(busy)).order_by("id")[:PER_PASS]
    advanced = 0
    for run in stalled:
        try:
            run_advance(run=run)
        except Exception:  # one broken run must not stop the reconciler for everyone
            logger.exception("engine: could not advance run %s", run.pk)
            continue
        advanced += 1
    return advanced
