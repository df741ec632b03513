"""One batch from the broker, from claim to results.

1. Claim every task's lease (POST claims/). A refused one is dropped: that is how a message
   the broker redelivers while a live agent holds the lease (or after the engine moved on)
   is never run twice.
2. Hold the claimed leases in the heartbeat thread until their results are posted.
3. Run the tasks one after the other in a warm executor of the batch's (team, environment).
4. Post the results in groups (POST results/); a refused one is logged and dropped.

What ends a task early:
- `cancel` from a heartbeat: the executor running it is killed, the task reported `cancelled`
  (a task still waiting its turn is reported `cancelled` without running).
- `stale` from a heartbeat: the lease is no longer the task's; it is abandoned, unreported.
- its timeout: the executor is killed `timeout_grace` seconds after it (the step's own
  deadline normally stops it first, at the running line); reported failed, type TimeoutError.
- the executor dying by itself (SIGKILL, segfault, out of memory): the task is NOT reported
  and its lease is let go, so it expires and the engine requeues it as lost. The engine owns
  retries: it tells a lost worker from a failing step (a lost attempt does not use up one of
  the step's retries) and caps how often a task may be lost. The rest of the batch runs in a
  fresh executor.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from cellar.artifacts import ArtifactStore
from cellar.pipelines.execute import store_value
from cellar.pipelines.wire import (
    CANCELLED,
    EXPAND,
    FAILED,
    LIVE_LOG_BYTES,
    SUCCEEDED,
    Batch,
    Lease,
    TaskItem,
    TaskReport,
)
from cellar_worker.engine_client import EngineClient, EngineError
from cellar_worker.executors import Executor, ExecutorGone, ExecutorPool
from cellar_worker.heartbeats import CANCEL, STALE, Heartbeats

logger = logging.getLogger(__name__)

# A log bigger than this keeps its end (the part with the error).
LOG_LIMIT = 16 * 1024 * 1024


def error_dict(raw: dict[str, Any], *, timed_out: bool = False) -> dict[str, Any]:
    """The report's error: StepFailed.to_dict() plus `type`, and `timed_out` for a step stopped by
    its timeout (its type is then `TimeoutError` whichever way it was stopped: at the running line,
    `exc_type` StepTimeout, or by killing the executor)."""
    error = dict(raw)
    exc_type = error.get("exc_type") or error.get("type") or "Error"
    error["exc_type"] = exc_type
    if timed_out or exc_type == "StepTimeout":
        error["type"], error["timed_out"] = "TimeoutError", True
    else:
        error["type"] = exc_type
    return error


def infrastructure_error(step: str, exc_type: str, message: str, *, phase: str, timed_out: bool = False) -> dict:
    return error_dict(
        {
            "step": step,
            "exc_type": exc_type,
            "message": message,
            "phase": phase,
            "frames": [],
            "cell": None,
            "line": None,
            "traceback": "",
        },
        timed_out=timed_out,
    )


class BatchRun:
    def __init__(
        self,
        batch: Batch,
        *,
        api_url: str,
        client: EngineClient,
        executors: ExecutorPool,
        heartbeats: Heartbeats,
        store: ArtifactStore,
        timeout_grace: float = 5.0,
        report_every: int = 500,  # above the largest batch (200): one results POST per batch, or per second
        report_interval: float = 1.0,
    ):
        self.batch = batch
        self.api_url = api_url
        self.client = client
        self.executors = executors
        self.heartbeats = heartbeats
        self.store = store
        self.timeout_grace = timeout_grace
        self.report_every = report_every
        self.report_interval = report_interval
        self._lock = threading.Lock()
        self._signals: dict[int, str] = {}  # task -> CANCEL | STALE, from the heartbeat thread
        # the task running now: (task id, its executor, when it started (monotonic), its timeout)
        self._current: tuple[int, Executor, float, float | None] | None = None
        self._pending: list[TaskReport] = []
        self._last_report = time.monotonic()
        self.summary = {"claimed": 0, "refused": 0, "reported": 0, "abandoned": 0}
        self.static_key = uuid.uuid4().hex
        self._log_end = {"stdout": 0, "stderr": 0}  # where the previous task's output ended in each file

    # --- the heartbeat thread's side ------------------------------------------------------

    def signal(self, task_id: int, signal: str) -> None:
        with self._lock:
            self._signals.setdefault(task_id, signal)
            if self._current is not None and self._current[0] == task_id:
                _, executor, started, timeout = self._current
                # The engine also cancels a task it sees running past its timeout: that is a timeout.
                overdue = signal == CANCEL and timeout and time.monotonic() - started >= timeout
                executor.kill("timeout" if overdue else signal)

    # --- the batch ---------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        claimed = self.claim()
        if not claimed:
            return self.summary
        logs = tempfile.mkdtemp(prefix="cellar-logs-")
        executor: Executor | None = None
        try:
            for item in claimed:
                executor = self.run_item(item, executor, Path(logs))
                self.maybe_report()
        finally:
            if executor is not None:
                self.executors.release(executor)
            self.report()
            for item in claimed:  # whatever is left (an abandoned task) lets its lease expire
                self.heartbeats.discard(self.api_url, item.task)
            shutil.rmtree(logs, ignore_errors=True)
        return self.summary

    def claim(self) -> list[TaskItem]:
        total = len(self.batch.tasks)
        held = []
        for item in self.batch.tasks:
            if self.heartbeats.hold(self.api_url, Lease(item.task, item.lease, item.token), self.signal):
                held.append(item)
            else:
                logger.info("task %s is already running in this agent: dropped", item.task)
        granted: set[int] = set()
        if held:
            try:
                answer = self.client.claim([Lease(t.task, t.lease, t.token) for t in held])
            except EngineError as exc:
                # Unclaimed leases expire after the claim grace and the engine dispatches them again.
                logger.error("could not claim %d task(s) of run %s: %s; batch dropped", total, self.batch.run, exc)
                answer = {}
            granted = {int(t) for t in answer.get("claimed") or []}
            for task, reason in (answer.get("refused") or {}).items():
                logger.info("task %s was not claimed (%s): dropped", task, reason)
        claimed = [t for t in held if t.task in granted]
        for item in held:
            if item.task not in granted:
                self.heartbeats.discard(self.api_url, item.task)
        self.summary["claimed"], self.summary["refused"] = len(claimed), total - len(claimed)
        return claimed

    def run_item(self, item: TaskItem, executor: Executor | None, logs: Path) -> Executor | None:
        """Run one task; return the executor to use for the next one (None: start a fresh one)."""
        with self._lock:
            signal = self._signals.get(item.task)
        if signal == CANCEL:
            self.add_report(item, CANCELLED, started=None)
            return executor
        if signal == STALE:
            self.abandon(item, "its lease is stale")
            return executor
        if executor is None:
            try:
                executor = self.executors.acquire(self.batch.team, self.batch.environment)
            except ExecutorGone as exc:
                self.abandon(item, str(exc))
                return None
        out, err = logs / "batch.stdout", logs / "batch.stderr"  # shared by the batch's tasks, read by offset
        timeout = self.batch.timeout or self.batch.step.get("timeout")
        started = time.time()
        self.heartbeats.started(self.api_url, item.task, started)
        self.heartbeats.watch_logs(self.api_url, item.task, partial(self.live_tail, out, err))
        deadline = time.monotonic() + timeout + self.timeout_grace if timeout else None
        with self._lock:
            arrived = item.task in self._signals  # a signal came while the executor was starting
            if not arrived:
                self._current = (item.task, executor, time.monotonic(), timeout)
        if arrived:
            return self.run_item(item, executor, logs)
        try:
            answer = executor.run(self.request(executor, item, out, err, timeout), deadline=deadline)
        except ExecutorGone as exc:
            self.executors.discard(executor)
            self.after_gone(item, exc, started, timeout, out, err)
            return None
        finally:
            self.heartbeats.watch_logs(self.api_url, item.task, None)
            with self._lock:
                self._current = None
        if answer.get("ok"):
            self.add_report(item, SUCCEEDED, started=started, answer=answer, out=out, err=err)
        else:
            self.add_report(item, FAILED, started=started, error=error_dict(answer["error"]), out=out, err=err)
        return executor

    def after_gone(self, item: TaskItem, exc: ExecutorGone, started: float, timeout, out: Path, err: Path) -> None:
        step = self.batch.step.get("name", "")
        if exc.reason == CANCEL:
            self.add_report(item, CANCELLED, started=started, out=out, err=err)
        elif exc.reason == "timeout":
            message = (
                f"the step ran longer than its timeout of {timeout}s (tag timeout:) and was stopped; "
                f"speed it up or raise the limit"
            )
            error = infrastructure_error(step, "TimeoutError", message, phase="timeout", timed_out=True)
            self.add_report(item, FAILED, started=started, error=error, out=out, err=err)
        elif exc.reason == STALE:
            self.abandon(item, "its lease went stale while it ran")
        else:
            self.abandon(item, f"{exc}: the engine requeues it when its lease expires")

    def abandon(self, item: TaskItem, why: str) -> None:
        logger.warning("task %s of run %s left unreported: %s", item.task, self.batch.run, why)
        self.heartbeats.discard(self.api_url, item.task)
        self.summary["abandoned"] += 1

    def request(self, executor: Executor, item: TaskItem, out: Path, err: Path, timeout: float | None) -> dict:
        env = {
            "CELLAR_URL": self.api_url,
            "CELLAR_TOKEN": item.token,
            "CELLAR_TEAM": self.batch.team,
            "CELLAR_RUN_ID": self.batch.tracking_run,
        }
        request = {
            "op": "run",
            "kind": item.kind,
            "team": self.batch.team,
            "static": self.static_key,
            "inputs": item.inputs,
            "item": item.item,
            "timeout": timeout,
            "env": env,
            "stdout": str(out),
            "stderr": str(err),
        }
        if executor.known_static != self.static_key:
            # What every task of the batch shares goes once per executor: encoding and decoding
            # the step's code and source map with each task was a tenth of an executor's time.
            request.update(step=self.batch.step, source=self.batch.source, parameters=self.batch.parameters)
            executor.known_static = self.static_key
        return request

    # --- results -------------------------------------------------------------------------------

    def add_report(
        self,
        item: TaskItem,
        state: str,
        *,
        started: float | None,
        answer: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        out: Path | None = None,
        err: Path | None = None,
    ) -> None:
        answer = answer or {}
        report = TaskReport(
            task=item.task,
            lease=item.lease,
            token=item.token,
            state=state,
            outputs=(answer.get("outputs") or {}) if item.kind != EXPAND else {},
            items=answer.get("items") if item.kind == EXPAND and state == SUCCEEDED else None,
            error=error,
            logs=self.store_logs(out, err, answer.get("log_sizes")),
            started_at=started,
            ended_at=time.time(),
        )
        self._pending.append(report)

    def live_tail(self, out: Path, err: Path) -> dict[str, str]:
        """The end of what the running task has written so far (for its heartbeats)."""
        tail = {}
        for stream, path in (("stdout", out), ("stderr", err)):
            start, end = self._log_end[stream], _size(path)
            text = _read_log(path, max(start, end - LIVE_LOG_BYTES), end)
            if text:
                tail[stream] = text
        return tail

    def store_logs(self, out: Path | None, err: Path | None, sizes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store what this task wrote: each batch file from where the previous task's output ended
        to the size the executor reported (or the file's size, when it died without a word)."""
        logs = {}
        for stream, path in (("stdout", out), ("stderr", err)):
            start = self._log_end[stream]
            end = (sizes or {}).get(stream)
            if not isinstance(end, int) or isinstance(end, bool):
                end = _size(path)
            self._log_end[stream] = max(start, end)
            text = _read_log(path, start, end)
            if text:
                try:
                    logs[stream] = store_value(text, store=self.store, team=self.batch.team, inline=False).to_dict()
                except Exception:  # noqa: BLE001 - a log that cannot be stored must not lose the result
                    logger.exception("storing the %s log failed", stream)
        return logs

    def maybe_report(self) -> None:
        due = time.monotonic() - self._last_report >= self.report_interval
        if len(self._pending) >= self.report_every or (self._pending and due):
            self.report()

    def report(self) -> None:
        pending, self._pending = self._pending, []
        self._last_report = time.monotonic()
        if not pending:
            return
        try:
            answer = self.client.report(pending)
        except EngineError as exc:
            # Their leases expire and the engine requeues them as lost (the steps run again).
            logger.error("results of %d task(s) could not be posted: %s", len(pending), exc)
            answer = {}
        for task, reason in (answer.get("refused") or {}).items():
            logger.warning("the engine refused the result of task %s: %s", task, reason)
        self.summary["reported"] += len(answer.get("accepted") or [])
        for report in pending:
            self.heartbeats.discard(self.api_url, report.task)


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except FileNotFoundError:
        return 0


def _read_log(path: Path | None, start: int, end: int) -> str:
    """Bytes [start, end) of a batch log file as text, keeping the last LOG_LIMIT bytes."""
    if path is None or end <= start:
        return ""
    skipped = max(0, end - start - LOG_LIMIT)
    with path.open("rb") as handle:
        handle.seek(start + skipped)
        data = handle.read(end - start - skipped)
    if skipped:
        data = f"[… the first {skipped} bytes are not kept …]\n".encode() + data
    return data.decode("utf-8", "replace")
