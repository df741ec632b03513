"""The fair dispatcher: ready tasks -> leases -> micro-batched messages on `pool.<name>`.

One call of `dispatch_pool` is one transaction:

1. **Window.** A pool keeps at most `workers x window_factor x max_batch` tasks in flight
   (dispatched + running): every worker has its next full message waiting, and the rest of the
   backlog stays in the database, where it can still be handed out fairly (what is already in
   Redis cannot be reordered). Messages carry `size = ceil(n / (2 x workers))` tasks, clamped to
   [1, max_batch], n being what may go now (the ready backlog within the quotas and the window).
2. **Quotas.** A team never has more than Team.max_concurrent_cpu_tasks (gpu pools:
   max_concurrent_gpu_tasks) tasks dispatched or running over all pools of that kind.
3. **Round-robin.** Teams take turns, fewest tasks in flight in this pool first (then the oldest
   ready task), each turn one batch of its oldest ready (run, step); turns go on until the window
   or every team's quota or backlog is used up. A team's 20,000-task fan-out therefore takes the
   window only while no other team has ready work.
4. **Leases.** Each task gets attempt += 1, a fresh lease (a random prefix per batch + the task
   id), a TaskAttempt row, state `dispatched` and lease_expires_at = now + claim grace
   (engine/settings.py): one UPDATE and one INSERT per batch.
5. **Publish on commit.** The messages go out in `transaction.on_commit`: a rolled-back dispatch
   publishes nothing, and a commit whose publish fails (broker down) leaves dispatched tasks whose
   message does not exist, which the reconciler finds and dispatches again (engine/reconcile.py).

Several control workers (PostgreSQL): dispatchers of one resource kind (cpu / gpu) take a
transaction-level advisory lock, so windows and quotas are exact, and candidate rows are read
`FOR UPDATE SKIP LOCKED`, so rows another transaction holds (a claim, a result) are passed over
instead of waited for and no task is ever leased twice. SQLite: IMMEDIATE transactions already
admit one writer at a time, and the control worker runs with concurrency 1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

import redis
from django.db import connection, transaction
from django.db.models import CharField, Count, F, Min, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat, Substr
from django.utils import timezone

from cellar.pipelines.runner.cache import environment_hash
from cellar.pipelines.spec import Environment
from cellar.pipelines.wire import Batch
from cellar_server.pipelines.engine import settings as engine_settings
from cellar_server.pipelines.engine import tokens
from cellar_server.pipelines.models import (
    RUN_QUEUED,
    RUN_RUNNING,
    TASK_DISPATCHED,
    TASK_IN_FLIGHT,
    TASK_QUEUED,
    TASK_SUCCEEDED,
    PipelineRun,
    Task,
    TaskAttempt,
)
from cellar_server.pipelines.pools import pool_offers
from cellar_server.teams.models import Team

logger = logging.getLogger(__name__)

RUN_BATCH = "cellar.pool.run_batch"  # the pool agent's task (workers/cellar_worker/agent.py)
DISPATCH_TASK = "cellar.engine.dispatch"  # pipelines/tasks.py
# Set while a dispatch request waits in the control queue; the dispatch task clears it when it starts.
PENDING_KEY = "cellar:engine:dispatch-pending"
PENDING_TTL = 60  # seconds: a lost request (broker restart) blocks new ones no longer than this
# Lease = 12 random hex characters + the task id: at most 31 characters (Task.lease holds 32).
LEASE_PREFIX = 12


def pool_queue(pool: str) -> str:
    return f"pool.{pool}"


# --- requesting a dispatch ---------------------------------------------------------------------


def dispatch_soon() -> None:
    """Ask the control worker for a dispatch once the current transaction commits.

    Debounced: the first request sets a Redis key and enqueues one `cellar.engine.dispatch` with a
    short countdown; later requests find the key and do nothing. The dispatch task deletes the key
    *before* it reads the database, so a request made after that enqueues a new one and no ready
    task waits for the next reconcile. Never raises: with the broker down the reconciler (beat)
    still dispatches.
    """
    transaction.on_commit(_request_dispatch)


def _request_dispatch() -> None:
    from cellar_server.celery import app

    client = broker_redis()
    try:
        if client is not None and not client.set(PENDING_KEY, "1", nx=True, ex=PENDING_TTL):
            return
        app.send_task(DISPATCH_TASK, countdown=engine_settings.dispatch_debounce() or None, ignore_result=True)
    except Exception as exc:  # broker down: the beat's reconcile dispatches instead
        logger.warning("engine: could not request a dispatch (%s); the reconciler will dispatch", exc)
        if client is not None:
            try:
                client.delete(PENDING_KEY)
            except redis.RedisError:
                pass


def dispatch_pending_clear() -> None:
    """Called by the dispatch task as it starts: requests from now on enqueue a new dispatch."""
    client = broker_redis()
    if client is None:
        return
    try:
        client.delete(PENDING_KEY)
    except redis.RedisError as exc:
        logger.warning("engine: could not clear the dispatch request key: %s", exc)


_clients: dict[str, redis.Redis] = {}


def broker_redis() -> redis.Redis | None:
    """A client of the broker's Redis (the control Celery app's broker_url), or None for another broker."""
    from cellar_server.celery import app

    url = str(app.conf.broker_url or "")
    if url.startswith("redis+socket://"):
        url = "unix://" + url[len("redis+socket://") :]
    elif not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return client


def batch_from_message(raw: bytes | str | dict[str, Any]) -> dict[str, Any] | None:
    """The Batch dict inside one kombu message on `pool.<name>` (None for another kind of message)."""
    envelope = json.loads(raw) if isinstance(raw, bytes | str) else raw
    if (envelope.get("headers") or {}).get("task") != RUN_BATCH:
        return None
    body = envelope.get("body", "")
    if (envelope.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args, _kwargs, _embed = json.loads(body)
    return args[0]


# --- dispatching -------------------------------------------------------------------------------


def dispatch_all() -> int:
    """Dispatch every pool: the configured ones and any pool that has queued tasks. -> tasks dispatched."""
    pools = set(pool_offers()) | set(Task.all_teams.filter(state=TASK_QUEUED).values_list("pool", flat=True).distinct())
    return sum(dispatch_pool(pool=pool) for pool in sorted(pools))


def dispatch_pool(*, pool: str) -> int:
    """Lease ready tasks of `pool` fairly within its window and the teams' quotas; publish on commit.

    Returns the number of tasks dispatched (the messages are fewer: micro-batches).
    """
    offers = pool_offers()
    gpu = _is_gpu(pool, offers)
    kind_pools = sorted({name for name in offers if _is_gpu(name, offers) == gpu} | {pool})
    messages: list[dict[str, Any]] = []
    with transaction.atomic():
        _serialize_dispatchers("gpu" if gpu else "cpu")
        now = timezone.now()
        ready = _ready(pool, now)
        workers = engine_settings.pool_workers(pool)
        largest = engine_settings.max_batch(pool)
        in_pool = _in_flight_by_team(pools=[pool], teams=None)
        room = workers * engine_settings.window_factor() * largest - sum(in_pool.values())
        # The window counts messages too: one running and (factor - 1) waiting per worker, so
        # whatever is already in the broker (first come, first served) is never more than a
        # couple of messages' time ahead of another team's next task.
        message_room = workers * engine_settings.window_factor() - _messages_in(pool)
        if room <= 0 or message_room <= 0:  # before the backlog: a full window is common under load
            return 0
        backlog = {
            row["team_id"]: (row["first"], row["n"])
            for row in ready.order_by().values("team_id").annotate(first=Min("id"), n=Count("id"))
        }
        if not backlog:
            return 0
        quota_left = _quota_left(teams=list(backlog), pools=kind_pools, gpu=gpu)
        # Sized on what may go (the backlog within the quotas), so that even a quota-bound team's
        # work spreads over every worker instead of queueing in one message; NOT on the room left
        # in the window: under load each result frees a few slots, and messages sized on those
        # would shrink to 1-3 tasks (a 20,000-task fan-out then ran ~17 tasks/s instead of ~160).
        dispatchable = sum(min(n, max(0, quota_left[team]) * largest) for team, (_first, n) in backlog.items())
        slots = sum(max(0, quota_left[team]) for team in backlog)
        size = min(largest, max(1, math.ceil(dispatchable / max(1, min(2 * workers, slots)))))
        # A window with less room than half a message waits for more results (benchmarks/bench_engine.py).
        least = (size + 1) // 2
        if room < least:
            return 0
        turns = sorted(backlog, key=lambda team: (in_pool.get(team, 0), backlog[team][0]))
        turns = [team for team in turns if quota_left[team] > 0]
        runs: dict[int, _RunInfo] = {}
        caps: dict[tuple[int, str], int] = {}
        issued = 0
        while room > 0 and message_room > 0 and turns:
            for team in list(turns):
                take = min(size, room) if quota_left[team] > 0 else 0
                if room < least and take == room:  # the window, not the quota, would cut this message short
                    turns = []
                    break
                tasks = _lock_next_group(ready, team=team, limit=take, runs=runs, caps=caps) if take > 0 else []
                if not tasks:
                    turns.remove(team)
                    continue
                messages.append(_issue(tasks, now=now, runs=runs))
                room -= len(tasks)
                message_room -= 1
                quota_left[team] -= 1
                issued += len(tasks)
                if room <= 0 or message_room <= 0:
                    break
        if messages:
            transaction.on_commit(partial(_publish, pool, messages))
    if issued:
        logger.info("engine: dispatched %d tasks of pool %s in %d messages", issued, pool, len(messages))
    return issued


def _is_gpu(pool: str, offers: dict) -> bool:
    offer = offers.get(pool)
    return bool(offer is not None and offer.gpu > 0)


def _serialize_dispatchers(kind: str) -> None:
    """PostgreSQL: one dispatcher per resource kind at a time (quotas span every pool of a kind)."""
    if connection.vendor != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(f"cellar.engine.dispatch.{kind}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _ready(pool: str, now: datetime) -> QuerySet[Task]:
    return Task.all_teams.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now),
        state=TASK_QUEUED,
        pool=pool,
        run__cancel_requested=False,
        run__state__in=(RUN_QUEUED, RUN_RUNNING),
    )


def _in_flight_by_team(*, pools: list[str], teams: list[int] | None) -> dict[int, int]:
    queryset = Task.all_teams.filter(state__in=TASK_IN_FLIGHT, pool__in=pools)
    if teams is not None:
        queryset = queryset.filter(team_id__in=teams)
    return {row["team_id"]: row["n"] for row in queryset.order_by().values("team_id").annotate(n=Count("id"))}


def _slots_by_team(*, pools: list[str], teams: list[int]) -> dict[int, int]:
    """Worker slots each team holds: its messages in flight. A message's tasks share the lease
    prefix `_issue` drew for it, and run one after the other in one executor."""
    queryset = Task.all_teams.filter(state__in=TASK_IN_FLIGHT, pool__in=pools, team_id__in=teams).exclude(lease="")
    rows = queryset.order_by().values("team_id").annotate(n=Count(Substr("lease", 1, LEASE_PREFIX), distinct=True))
    return {row["team_id"]: row["n"] for row in rows}


def _quota_left(*, teams: list[int], pools: list[str], gpu: bool) -> dict[int, int]:
    """Messages each team may still have in flight. The quota ("max concurrent tasks") counts
    tasks that can execute at the same time: a micro-batch executes its tasks one at a time in
    one executor, so it takes one slot however many tasks it holds. Counting its tasks instead
    held a 20,000-element fan-out under the default quota of 64 to messages of a few tasks."""
    field = "max_concurrent_gpu_tasks" if gpu else "max_concurrent_cpu_tasks"
    limits = dict(Team.objects.filter(id__in=teams).values_list("id", field))
    used = _slots_by_team(pools=pools, teams=teams)
    return {team: limits.get(team, 0) - used.get(team, 0) for team in teams}


class _Ready(NamedTuple):
    """A locked ready task, as the dispatcher needs it (a row, not a model: thousands per round)."""

    pk: int
    team_id: int
    run_id: int
    step: str
    attempt: int
    kind: str
    index: int
    inputs: dict[str, Any] | None
    item: dict[str, Any] | None


class _Leased(NamedTuple):
    """What tokens.task_token signs: the task's team, run, id and new lease."""

    pk: int
    team_id: int
    run_id: int
    lease: str


def _lock_next_group(
    ready: QuerySet[Task],
    *,
    team: int,
    limit: int,
    runs: dict[int, _RunInfo] | None = None,
    caps: dict[tuple[int, str], int] | None = None,
) -> list[_Ready]:
    """Up to `limit` ready tasks of the team's oldest ready (run, step), locked; [] when none is free.

    A step tagged `concurrency:<n>` keeps at most n tasks in flight per run: a group at its
    limit is passed over for the team's next one.
    """
    locked = ready.select_for_update(skip_locked=True, of=("self",)).order_by("id")
    head = list(locked.filter(team_id=team).values_list("run_id", "step")[:1])
    if not head:
        return []
    groups = [head[0]]
    run_id, step = head[0]
    if runs is not None and _step_cap(run_id, step, runs) is not None:
        groups = [
            (row["run_id"], row["step"])
            for row in ready.filter(team_id=team)
            .order_by()
            .values("run_id", "step")
            .annotate(first=Min("id"))
            .order_by("first")[:_GROUPS_SCANNED]
        ]
    for run_id, step in groups:
        take = limit if caps is None else min(limit, _batch_cap(run_id, step, caps))
        cap = _step_cap(run_id, step, runs) if runs is not None else None
        if cap is not None:
            in_flight = Task.all_teams.filter(run_id=run_id, step=step, state__in=TASK_IN_FLIGHT).count()
            take = min(limit, cap - in_flight)
            if take <= 0:
                continue
        rows = locked.filter(run_id=run_id, step=step).values_list(*_Ready._fields)[:take]
        if rows:
            return [_Ready(*row) for row in rows]
    return []


_GROUPS_SCANNED = 50  # ready (run, step) groups of one team looked at past a step at its concurrency limit
_DURATION_SAMPLE = 32  # finished tasks of a step whose times estimate the next message's size


def _batch_cap(run_id: int, step: str, caps: dict[tuple[int, str], int]) -> int:
    """Tasks of this step that fit in one message: engine_settings.batch_seconds() over the mean
    time of the step's tasks that finished in this run, or the probe size before any has."""
    key = (run_id, step)
    if key not in caps:
        times = _task_times(run_id, step)
        if not times:  # nothing finished in this run yet: the same version's latest runs know the step
            version = PipelineRun.all_teams.filter(pk=run_id).values_list("version_id", flat=True)
            earlier = PipelineRun.all_teams.filter(version_id__in=version).exclude(pk=run_id).order_by("-id")
            for earlier_run in earlier.values_list("pk", flat=True)[:3]:
                times = _task_times(earlier_run, step)
                if times:
                    break
        if not times:
            caps[key] = engine_settings.probe_batch()
        else:
            mean = sum(max(0.0, (end - start).total_seconds()) for start, end in times) / len(times)
            caps[key] = max(1, int(engine_settings.batch_seconds() / max(mean, 1e-4)))
    return caps[key]


def _task_times(run_id: int, step: str) -> list[tuple[datetime, datetime]]:
    rows = Task.all_teams.filter(run_id=run_id, step=step, state=TASK_SUCCEEDED, kind="step", started_at__isnull=False)
    return list(rows.exclude(ended_at=None).order_by().values_list("started_at", "ended_at")[:_DURATION_SAMPLE])


def _messages_in(pool: str) -> int:
    """Messages of `pool` in flight: distinct lease prefixes of its dispatched and running tasks."""
    in_flight = Task.all_teams.filter(state__in=TASK_IN_FLIGHT, pool=pool).exclude(lease="")
    return in_flight.aggregate(n=Count(Substr("lease", 1, LEASE_PREFIX), distinct=True))["n"] or 0


def _step_cap(run_id: int, step: str, runs: dict[int, _RunInfo]) -> int | None:
    return (_run_info(run_id, runs).steps.get(step) or {}).get("concurrency")


@dataclass
class _RunInfo:
    """What every batch of one run carries, read once per dispatch."""

    run: int
    team: str
    tracking_run: str
    parameters: dict[str, Any]
    steps: dict[str, dict[str, Any]]
    source: dict[str, Any]
    environment: str


def _run_info(run_id: int, runs: dict[int, _RunInfo]) -> _RunInfo:
    info = runs.get(run_id)
    if info is None:
        run = PipelineRun.all_teams.select_related("version", "team").get(pk=run_id)
        spec = run.version.spec
        environment = Environment(
            python=spec.get("python", ""), lock=spec.get("environment") or {}, modules=spec.get("modules") or {}
        )
        info = runs[run_id] = _RunInfo(
            run=run.pk,
            team=run.team.slug,
            tracking_run=run.tracking_run,
            parameters=run.parameters or {},
            steps={step["name"]: step for step in spec.get("steps", [])},
            source=spec.get("source") or {},
            environment=environment_hash(environment),
        )
    return info


def _issue(tasks: list[_Ready], *, now: datetime, runs: dict[int, _RunInfo]) -> dict[str, Any]:
    """Lease `tasks` (one run, one step) and return their message: a wire.Batch as a dict.

    One UPDATE and one INSERT for the whole batch, whatever its size (the ORM's bulk_update
    writes a CASE per row and costs seconds per thousand): each lease is this batch's random
    prefix + the task id, so it differs per row without per-row values and is unique per
    attempt; the token, signed over it, is what authorizes.
    """
    expires = now + engine_settings.claim_grace()
    prefix = uuid.uuid4().hex[:LEASE_PREFIX]
    ids = [task.pk for task in tasks]
    Task.all_teams.filter(pk__in=ids).update(
        attempt=F("attempt") + 1,
        lease=Concat(Value(prefix), Cast("id", output_field=CharField())),
        state=TASK_DISPATCHED,
        lease_expires_at=expires,
        dispatched_at=now,
        worker="",
    )
    _attempts_insert(ids, now=now)

    info = _run_info(tasks[0].run_id, runs)
    step = info.steps[tasks[0].step]
    items = []
    for task in tasks:
        lease = f"{prefix}{task.pk}"
        items.append(
            {
                "task": task.pk,
                "attempt": task.attempt + 1,
                "lease": lease,
                "token": tokens.task_token(_Leased(task.pk, task.team_id, task.run_id, lease)),
                "kind": task.kind,
                "index": task.index if task.index >= 0 else None,
                "inputs": task.inputs or {},
                "item": task.item,
            }
        )
    batch = Batch(
        team=info.team,
        run=info.run,
        tracking_run=info.tracking_run,
        step=step,
        tasks=[],  # filled below with plain dicts: TaskItem's fields, without a deep copy per task
        parameters={name: info.parameters[name] for name in step.get("parameters", []) if name in info.parameters},
        source=info.source.get(step["name"]),
        environment=info.environment,
        api_url=engine_settings.api_url(),
        timeout=step.get("timeout"),
    ).to_dict()
    batch["tasks"] = items
    return batch


def _attempts_insert(ids: list[int], *, now: datetime) -> None:
    """One TaskAttempt per task, copied from the rows just leased (INSERT ... SELECT)."""
    quote = connection.ops.quote_name
    attempt_table, task_table = quote(TaskAttempt._meta.db_table), quote(Task._meta.db_table)
    placeholders = ", ".join(["%s"] * len(ids))
    sql = (
        f"INSERT INTO {attempt_table} (team_id, task_id, number, lease, state, worker, dispatched_at) "
        f"SELECT team_id, id, attempt, lease, %s, %s, %s FROM {task_table} WHERE id IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [TASK_DISPATCHED, "", connection.ops.adapt_datetimefield_value(now), *ids])


def _publish(pool: str, messages: list[dict[str, Any]]) -> None:
    """After commit: one message per batch. A failure is logged, never raised: the tasks stay
    `dispatched` without a message, and the reconciler re-dispatches them after the claim grace."""
    from cellar_server.celery import app

    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for body in messages:
                app.send_task(RUN_BATCH, args=[body], queue=pool_queue(pool), producer=producer, ignore_result=True)
                sent += 1
    except Exception as exc:
        logger.error(
            "engine: published %d of %d messages to %s (%s); the reconciler re-dispatches the rest",
            sent,
            len(messages),
            pool_queue(pool),
            exc,
        )
