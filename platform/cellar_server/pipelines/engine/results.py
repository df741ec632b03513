"""What the pool agents tell the engine (through the worker API): claims, heartbeats, results.

Fencing: every entry carries its task's token and lease. The token must be one this server
signed for that task and lease (engine/tokens.py); the lease must be the task's current one
and the task must be in flight, or the entry is refused (`stale`): a result from an attempt
that was requeued, a message redelivered after its task moved on, a duplicate of a finished
task. A claim moves `dispatched` -> `running` for that lease once (first claim wins; the same
worker claiming again is answered `claimed` so an HTTP retry is harmless).

Failures: a user error with retries left goes back to `queued` with a backoff (not_before);
otherwise the task fails and the run stops (engine/closing.py). A lost worker (reconciler) or
an agent that gave a task back requeues it without consuming a retry, up to max_lost times.

Results of one run are applied under the run's row lock, then `run_advance` creates what
became ready; a dispatch is requested on commit.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cellar.pipelines.execute import INLINE_MAX_BYTES
from cellar.pipelines.wire import CANCELLED, FAILED, SUCCEEDED, Lease, TaskReport
from cellar_server.pipelines.engine import cache
from cellar_server.pipelines.engine import settings as engine_settings
from cellar_server.pipelines.engine.advance import graph_for, run_advance
from cellar_server.pipelines.engine.closing import run_record_failure
from cellar_server.pipelines.engine.dispatch import dispatch_soon
from cellar_server.pipelines.engine.rows import save_tasks
from cellar_server.pipelines.engine.tokens import TokenInvalid, token_verify
from cellar_server.pipelines.models import (
    TASK_CANCELLED,
    TASK_DISPATCHED,
    TASK_FAILED,
    TASK_IN_FLIGHT,
    TASK_QUEUED,
    TASK_RUNNING,
    TASK_SUCCEEDED,
    TASK_TERMINAL,
    PipelineRun,
    Task,
    TaskAttempt,
)

BAD_TOKEN, UNKNOWN, STALE, CLAIMED, CANCELLED_REASON, INVALID = (
    "bad_token",
    "unknown_task",
    "stale",
    "claimed",
    "cancelled",
    "invalid",
)
MAX_FANOUT = 100_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
TASK_FIELDS = ["state", "outputs", "items", "logs", "error", "worker", "lease", "lease_expires_at", "not_before"]
TASK_FIELDS += ["lost_attempts", "started_at", "ended_at", "live_logs"]


def _verified(entries: list[Lease] | list[TaskReport]) -> tuple[dict[int, Any], dict[str, str]]:
    good: dict[int, Any] = {}
    refused: dict[str, str] = {}
    for entry in entries:
        try:
            token_verify(entry.token, task_id=entry.task, lease=entry.lease)
        except TokenInvalid:
            refused[str(entry.task)] = BAD_TOKEN
            continue
        good[entry.task] = entry
    return good, refused


# --- claims and heartbeats ------------------------------------------------------------------------------


def tasks_claim(*, worker: str, leases: list[Lease]) -> dict[str, Any]:
    """Claim dispatched tasks for `worker`: {"claimed": [id], "refused": {id: reason}}."""
    good, refused = _verified(leases)
    claimed: list[int] = []
    now = timezone.now()
    expires = now + engine_settings.lease_ttl()
    with transaction.atomic():
        # Rows locked in id order, as every multi-row locker here does: no deadlock between them.
        locked = Task.all_teams.select_for_update().filter(pk__in=list(good)).order_by("pk")
        # Only what fencing reads: a claim covers a whole batch, and decoding every row's JSON
        # (inputs, outputs) was a fifth of a claim's time.
        tasks = {t.pk: t for t in locked.only("pk", "run_id", "lease", "state", "worker")}
        cancelled_runs = set(
            PipelineRun.all_teams.filter(pk__in={t.run_id for t in tasks.values()}, cancel_requested=True).values_list(
                "pk", flat=True
            )
        )
        changed = []
        for task_id, lease in good.items():
            task = tasks.get(task_id)
            if task is None:
                refused[str(task_id)] = UNKNOWN
            elif task.lease != lease.lease:
                refused[str(task_id)] = STALE
            elif task.state == TASK_RUNNING:
                if task.worker == worker:
                    claimed.append(task_id)  # the same worker asking again (an HTTP retry)
                else:
                    refused[str(task_id)] = CLAIMED  # a redelivered message: the live holder keeps it
            elif task.state != TASK_DISPATCHED:
                refused[str(task_id)] = CANCELLED_REASON if task.state == TASK_CANCELLED else STALE
            elif task.run_id in cancelled_runs:
                refused[str(task_id)] = CANCELLED_REASON
            else:
                task.state, task.worker, task.started_at, task.lease_expires_at = TASK_RUNNING, worker, now, expires
                changed.append(task)
                claimed.append(task_id)
        # Every claimed task gets the same values: one statement.
        Task.all_teams.filter(pk__in=[t.pk for t in changed]).update(
            state=TASK_RUNNING, worker=worker[:200], started_at=now, lease_expires_at=expires
        )
        TaskAttempt.all_teams.filter(lease__in=[t.lease for t in changed], task_id__in=[t.pk for t in changed]).update(
            state=TASK_RUNNING, worker=worker[:200], started_at=now
        )
    if changed:
        # Outside the claim's transaction: a cosmetic state, and no run row is locked while tasks are.
        runs = {t.run_id for t in changed}
        PipelineRun.all_teams.filter(pk__in=runs, state="queued").update(state="running", started_at=now)
    return {"claimed": claimed, "refused": refused}


def tasks_heartbeat(*, worker: str, leases: list[Lease]) -> dict[str, Any]:
    """Extend the leases of running tasks: {"alive": [id], "cancel": [id], "stale": [id]}.

    `cancel`: stop this task (its run was cancelled, or it ran past its step's timeout, counted
    from the `started_at` the agent reports: a task waiting its turn in a batch is not running);
    `stale`: the lease is not the task's current one any more (drop the work). A task not yet
    claimed is answered alive but keeps its claim grace (only running leases are extended)."""
    good, refused = _verified(leases)
    now = timezone.now()
    rows = (
        Task.all_teams.filter(pk__in=list(good))
        .order_by("pk")
        .values_list("pk", "lease", "state", "run_id", "step", "started_at")
    )
    runs = {
        pk: (cancel_requested, version_id)
        for pk, cancel_requested, version_id in PipelineRun.all_teams.filter(pk__in={r[3] for r in rows}).values_list(
            "pk", "cancel_requested", "version_id"
        )
    }
    alive, cancel, stale = [], [], [int(task_id) for task_id in refused]
    grace = engine_settings.lease_ttl()
    for task_id, lease, state, run_id, step, _claimed_at in rows:
        if lease != good[task_id].lease or state not in TASK_IN_FLIGHT:
            stale.append(task_id)
            continue
        cancel_requested, version_id = runs[run_id]
        timeout = graph_for(version_id).steps[step].timeout
        began = good[task_id].started_at
        overdue = bool(timeout and began and now.timestamp() - began > timeout + grace.total_seconds())
        (cancel if cancel_requested or overdue else alive).append(task_id)
    stale += [task_id for task_id in good if task_id not in {r[0] for r in rows}]
    keep = [(task_id, good[task_id].lease) for task_id in alive + cancel]
    if keep:
        match = Q()
        for task_id, lease in keep:
            match |= Q(pk=task_id, lease=lease)
        with transaction.atomic():
            # A row a result is writing right now is passed over, not waited for: that task is
            # finishing, and waiting could deadlock with the result's own locks.
            live = Task.all_teams.filter(match, state=TASK_RUNNING).select_for_update(skip_locked=True)
            live_ids = list(live.values_list("pk", flat=True))
            Task.all_teams.filter(pk__in=live_ids).update(lease_expires_at=now + grace)
            for task_id in set(live_ids) & set(alive):  # only the task running now has a tail
                if good[task_id].logs:
                    Task.all_teams.filter(pk=task_id).update(live_logs=good[task_id].logs)
    return {"alive": alive, "cancel": cancel, "stale": sorted(stale)}


# --- results --------------------------------------------------------------------------------------------


def tasks_report(*, worker: str, reports: list[TaskReport]) -> dict[str, Any]:
    """Apply finished tasks' results: {"accepted": [id], "refused": {id: reason}}."""
    good, refused = _verified(reports)
    accepted: list[int] = []
    by_run: dict[int, list[TaskReport]] = defaultdict(list)
    for task_id, run_id in Task.all_teams.filter(pk__in=list(good)).values_list("pk", "run_id"):
        by_run[run_id].append(good[task_id])
    known = {r.task for group in by_run.values() for r in group}
    refused.update({str(task_id): UNKNOWN for task_id in good if task_id not in known})
    for run_id in sorted(by_run):
        with transaction.atomic():
            _apply_run(run_id, by_run[run_id], worker, accepted, refused)
    if accepted:
        dispatch_soon()
    return {"accepted": accepted, "refused": refused}


def _apply_run(run_id: int, reports: list[TaskReport], worker: str, accepted: list, refused: dict) -> None:
    run = PipelineRun.all_teams.select_for_update().get(pk=run_id)
    graph = graph_for(run.version_id)
    # A task's inputs and item are never written back here; a join's inputs hold one reference
    # per element (20,000 for a wide fan-out), so they are not read either.
    locked = (
        Task.all_teams.select_for_update()
        .filter(pk__in=[r.task for r in reports])
        .defer("inputs", "item")
        .order_by("pk")
    )
    tasks = {t.pk: t for t in locked}
    now = timezone.now()
    changed, completed, entries = [], [], []
    attempts: dict[tuple[str, str], list[str]] = defaultdict(list)  # (state, error key) -> leases
    attempt_errors: dict[str, Any] = {}
    for report in reports:
        task = tasks[report.task]
        if task.lease != report.lease or task.state not in TASK_IN_FLIGHT:
            if task.lease == report.lease and task.state == report.state and task.state in TASK_TERMINAL:
                accepted.append(task.pk)  # the same result again (the agent retried): nothing to do
            else:
                refused[str(task.pk)] = CANCELLED_REASON if task.state == TASK_CANCELLED else STALE
            continue
        if report.state not in (SUCCEEDED, FAILED, CANCELLED):
            refused[str(task.pk)] = INVALID
            continue
        step = graph.steps[task.step]
        lease = task.lease
        task.worker = worker[:200]
        task.started_at = _when(report.started_at) or task.started_at or now
        state, error = report.state, _error(report.error)
        if state == SUCCEEDED:
            problem = _take_outputs(task, step, report)
            if problem:
                state, error = FAILED, {"type": "InvalidResult", "exc_type": "InvalidResult", "message": problem}
        if state == SUCCEEDED:
            task.state, task.error, task.ended_at = TASK_SUCCEEDED, None, _when(report.ended_at) or now
            task.lease_expires_at = None
            task.logs = _refs_map(report.logs)
            run.tasks_done += 1
            completed.append(task)
            if task.kind == "step" and task.cache_key and cache.cache_usable(step):
                entries.append((task.team_id, task.cache_key, task.outputs, task.pk))
            attempts[(SUCCEEDED, "")].append(lease)
        elif state == FAILED:
            timed_out = error.get("exc_type") == "StepTimeout" or bool(error.get("timed_out"))
            attempt_state = "timed_out" if timed_out else "failed"
            attempts[(attempt_state, lease)].append(lease)
            attempt_errors[lease] = error
            task.logs = _refs_map(report.logs) or task.logs
            _retry_or_fail(run, task, step, error, consume_retry=True, now=now)
        else:  # cancelled by the agent
            attempts[("cancelled", "")].append(lease)
            if run.cancel_requested:
                task.state, task.ended_at, task.lease_expires_at = TASK_CANCELLED, now, None
            else:  # the agent gave it back (shutting down): not the user's fault
                error = {"type": "WorkerStopped", "message": f"worker {worker} stopped before the task finished"}
                _retry_or_fail(run, task, step, error, consume_retry=False, now=now)
        task.live_logs = {}  # the attempt is over: its whole output is in `logs`
        changed.append(task)
        accepted.append(task.pk)
    if run.tasks_failed or run.cancel_requested:
        for task in changed:  # a retry decided in this batch must not outlive the run's stop
            if task.state == TASK_QUEUED:
                task.state, task.ended_at = TASK_CANCELLED, now
    save_tasks(changed, TASK_FIELDS)
    for (state, key), leases in attempts.items():
        TaskAttempt.all_teams.filter(lease__in=leases).update(
            state=state, worker=worker[:200], ended_at=now, error=attempt_errors.get(key)
        )
    cache.cache_store(entries=entries)
    run.save(update_fields=["tasks_done", "tasks_failed", "error"])
    run_advance(run=run, completed=completed)


def _retry_or_fail(run, task: Task, step, error: dict[str, Any], *, consume_retry: bool, now: datetime) -> None:
    """Back to `queued` if a retry (or a lost-worker requeue) is left, else failed for good."""
    task.lease, task.lease_expires_at, task.error = "", None, error
    if consume_retry:
        user_attempts = task.attempt - task.lost_attempts
        if user_attempts <= step.retry:
            task.state, task.not_before = TASK_QUEUED, now + engine_settings.retry_backoff(user_attempts)
            return
    else:
        task.lost_attempts += 1
        if task.lost_attempts < engine_settings.max_lost():
            task.state, task.not_before = TASK_QUEUED, None
            return
        error = {
            **error,
            "message": f"{error.get('message', 'the worker was lost')} ({task.lost_attempts} times; giving up)",
        }
        task.error = error
    task.state, task.ended_at = TASK_FAILED, now
    run_record_failure(run=run, task=task, error=error)


def task_requeue(*, task: Task, reason: str, consume_retry: bool) -> str:
    """Put an in-flight task back in the queue (the reconciler: a lost worker, a lost message, a
    timeout), or fail it when its budget is spent. Returns the task's new state.

    Without `consume_retry` (a lost worker or message) the user's `retry:` budget is untouched,
    and a lease that came back to life (a heartbeat arrived meanwhile) is left alone.
    """
    now = timezone.now()
    with transaction.atomic():
        run = PipelineRun.all_teams.select_for_update().get(pk=task.run_id)
        current = Task.all_teams.select_for_update().get(pk=task.pk)
        if current.state not in TASK_IN_FLIGHT or (task.lease and current.lease != task.lease):
            return current.state
        if not consume_retry and current.lease_expires_at and current.lease_expires_at > now:
            return current.state
        step = graph_for(run.version_id).steps[current.step]
        messages = {
            "lost": "the worker running this task was lost (it stopped heartbeating)",
            "timed_out": f"the task ran longer than its timeout of {step.timeout}s",
        }
        error = {"type": "TaskLost" if reason == "lost" else "TaskTimedOut", "exc_type": None}
        error["message"] = messages.get(reason, f"the task was requeued ({reason})")
        TaskAttempt.all_teams.filter(task_id=current.pk, lease=current.lease).update(
            state=reason[:16], ended_at=now, error=error
        )
        _retry_or_fail(run, current, step, error, consume_retry=consume_retry, now=now)
        current.live_logs = {}
        current.save(update_fields=TASK_FIELDS)
        run.save(update_fields=["tasks_failed", "error"])
        if current.state == TASK_FAILED:
            run_advance(run=run, completed=[])  # nothing new can start; close the run if it is done
    dispatch_soon()
    return current.state


# --- validating what the worker sent ---------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e11:
        return datetime.fromtimestamp(value, UTC)
    return None


def _ref(value: Any) -> dict[str, Any] | None:
    """An ArtifactRef dict as the control plane keeps it, or None when it is not one."""
    if not isinstance(value, dict) or not isinstance(value.get("sha256"), str) or not _SHA256.match(value["sha256"]):
        return None
    size = value.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        return None
    serializer, kind = value.get("serializer"), value.get("type", "")
    if not isinstance(serializer, str) or not serializer or len(serializer) > 64 or not isinstance(kind, str):
        return None
    ref = {"sha256": value["sha256"], "serializer": serializer, "size": size, "type": kind[:200]}
    inline = value.get("inline")
    if inline is not None:
        # A small value's JSON text travels in its reference (cellar.pipelines.execute.refs): kept
        # as text, never parsed here, and only when its digest and size are the reference's own.
        data = inline.encode("utf-8") if isinstance(inline, str) else b""
        if serializer != "json" or not data or len(data) > INLINE_MAX_BYTES or size != len(data):
            return None
        if hashlib.sha256(data).hexdigest() != ref["sha256"]:
            return None
        ref["inline"] = inline
    return ref


def _refs_map(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {str(k)[:100]: ref for k, ref in ((k, _ref(v)) for k, v in value.items()) if ref is not None}


def _take_outputs(task: Task, step, report: TaskReport) -> str | None:
    """Copy the reported outputs (or elements) into the task; a message when they are unusable."""
    if task.kind == "expand":
        items = report.items
        if not isinstance(items, list):
            return "the worker reported no foreach elements for this expansion"
        if len(items) > MAX_FANOUT:
            return f"the foreach has {len(items)} elements; the limit is {MAX_FANOUT}: split the work in chunks"
        refs = [_ref(i) for i in items]
        if any(r is None for r in refs):
            return "the worker reported a foreach element that is not an artifact reference"
        task.items = refs
        return None
    outputs = report.outputs if isinstance(report.outputs, dict) else {}
    clean = {name: _ref(outputs.get(name)) for name in step.outputs}
    missing = sorted(name for name, ref in clean.items() if ref is None)
    if missing:
        return f"the worker reported no usable output for {', '.join(repr(n) for n in missing)}"
    task.outputs = clean
    return None


def _error(value: Any) -> dict[str, Any]:
    """The failure as the engine keeps it: the StepFailed dict (or {"type", "message"}), size-capped."""
    if not isinstance(value, dict):
        return {"type": "Error", "message": "the worker reported a failure without details"}
    error: dict[str, Any] = {}
    for key in ("step", "exc_type", "type", "message", "phase", "traceback", "timed_out"):
        if key in value:
            item = value[key]
            error[key] = item[:20_000] if isinstance(item, str) else item
    if isinstance(value.get("cell"), int | str) or value.get("cell") is None:
        error["cell"] = value.get("cell")
    if isinstance(value.get("line"), int) or value.get("line") is None:
        error["line"] = value.get("line")
    if isinstance(value.get("frames"), list):
        error["frames"] = [f for f in value["frames"][:50] if isinstance(f, dict)]
    return error
