"""One thread renewing the leases of every task this agent holds, and passing on what comes back.

A lease is held from the claim until its result has been posted (accepted or refused): a
task waiting its turn in a batch, running, or finished with its result not yet sent. The
engine's answer names tasks to `cancel` (run cancelled, timeout) and `stale` ones (the lease
is no longer the task's: it was requeued or finished elsewhere); each goes to the handler
registered with the lease. A task whose executor died is removed at once, so its lease
expires and the engine requeues it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from cellar.pipelines.wire import Lease
from cellar_worker.engine_client import EngineClient, EngineError

logger = logging.getLogger(__name__)

CANCEL, STALE = "cancel", "stale"

# handler(task_id, signal) where signal is CANCEL or STALE; called on the heartbeat thread.
Handler = Callable[[int, str], None]


class Heartbeats:
    def __init__(self, *, client_for: Callable[[str], EngineClient], interval: float = 5.0):
        self.client_for = client_for
        self.interval = interval
        self._held: dict[tuple[str, int], tuple[Lease, Handler]] = {}
        # task -> what it has written so far (batches.py registers it while the task runs)
        self._tails: dict[tuple[str, int], Callable[[], dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, api_url: str, lease: Lease, handler: Handler) -> bool:
        """Start holding `lease`; False when this agent already holds the task (a message the
        broker redelivered to the agent that is running it: the engine would see the same worker
        claiming again and say yes, so the agent itself must drop it)."""
        with self._lock:
            if (api_url, lease.task) in self._held:
                return False
            self._held[(api_url, lease.task)] = (lease, handler)
            return True

    def started(self, api_url: str, task_id: int, when: float) -> None:
        """The task's step began running now: its heartbeats say so (the engine measures timeouts from it)."""
        with self._lock:
            entry = self._held.get((api_url, task_id))
            if entry is not None:
                lease, handler = entry
                self._held[(api_url, task_id)] = (replace(lease, started_at=when), handler)

    def watch_logs(self, api_url: str, task_id: int, tail: Callable[[], dict[str, str]] | None) -> None:
        """While the task runs, each heartbeat carries `tail()`: the end of its output so far."""
        with self._lock:
            if tail is None:
                self._tails.pop((api_url, task_id), None)
            else:
                self._tails[(api_url, task_id)] = tail

    def discard(self, api_url: str, task_id: int) -> None:
        with self._lock:
            self._held.pop((api_url, task_id), None)
            self._tails.pop((api_url, task_id), None)

    def held(self) -> list[int]:
        with self._lock:
            return sorted(task for _, task in self._held)

    def beat(self) -> None:
        """Renew every lease held, one request per engine; hand cancels and stale leases to their handlers."""
        with self._lock:
            by_url: dict[str, list[tuple[Lease, Handler]]] = {}
            tails = dict(self._tails)
            for (url, _), entry in self._held.items():
                by_url.setdefault(url, []).append(entry)
        for url, entries in by_url.items():
            for i, (lease, handler) in enumerate(entries):
                tail = tails.get((url, lease.task))
                if tail is not None:
                    try:
                        entries[i] = (replace(lease, logs=tail() or None), handler)
                    except Exception:  # noqa: BLE001 - a log that cannot be read must not stop the beat
                        logger.exception("reading the live log of task %s failed", lease.task)
        for url, entries in by_url.items():
            try:
                # No retry: the next beat comes in a few seconds, well inside the lease's life.
                answer = self.client_for(url).heartbeat([lease for lease, _ in entries])
            except EngineError as exc:
                logger.warning("heartbeat for %d task(s) failed: %s", len(entries), exc)
                continue
            handlers = {lease.task: handler for lease, handler in entries}
            for signal, ids in ((CANCEL, answer.get("cancel") or []), (STALE, answer.get("stale") or [])):
                for raw in ids:
                    handler = handlers.get(int(raw))
                    if handler is not None:
                        try:
                            handler(int(raw), signal)
                        except Exception:  # noqa: BLE001 - one bad handler must not stop the beats
                            logger.exception("handling %s for task %s failed", signal, raw)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.beat()
                except Exception:  # noqa: BLE001 - the beat must go on
                    logger.exception("heartbeat round failed")

        self._thread = threading.Thread(target=loop, name="cellar-heartbeats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 35)
