"""`cellar.track(...)`: send A/B-test outcomes from an application, batched in the background.

    import cellar
    cellar.track(test=42, unit_id="user-17", name="converted")          # value 1
    cellar.track(test=42, unit_id="user-17", name="revenue", value=12.5)
    cellar.flush_tracked()                                               # before exit (also atexit)

A call appends to a deque (about a microsecond). A daemon thread sends up to 5,000 events per
POST /api/v1/teams/<team>/ab-tests/<id>/events every `interval` seconds (or as soon as a batch
is full); a failed send is retried with backoff, and because every event carries an id (a
random UUID unless given) and the server ignores ids it has seen, a resend never double counts.
A refusal (4xx: bad values) is raised from the next `track`/`flush`.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
import uuid
from collections import deque
from datetime import datetime
from typing import Any

from cellar.client import CellarAPIError, Client

MAX_BATCH = 5000


class Tracker:
    def __init__(self, client: Client | None = None, *, team: str | None = None, interval: float = 1.0):
        self.client = client or Client()
        self.team = team or os.environ.get("CELLAR_TEAM")
        self.interval = interval
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._sending = 0
        self._error: CellarAPIError | None = None
        self._thread = threading.Thread(target=self._run, name="cellar-track", daemon=True)
        self._thread.start()
        self.sent = 0
        self.duplicates = 0

    def track(
        self,
        *,
        test: int,
        unit_id: str,
        name: str,
        value: float = 1.0,
        at: datetime | float | None = None,
        event_id: str | None = None,
        team: str | None = None,
    ) -> str:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"value must be a finite number, not {value!r}")
        slug = team or self.team
        if not slug:
            raise ValueError("Name the team: track(..., team='acme') or set CELLAR_TEAM.")
        event = {"id": event_id or uuid.uuid4().hex, "unit_id": str(unit_id), "name": name, "value": value}
        event["at"] = at.isoformat() if isinstance(at, datetime) else (at if at is not None else time.time())
        self._queue.append((f"teams/{slug}/ab-tests/{int(test)}/events", event))
        if len(self._queue) >= MAX_BATCH:
            self._wake.set()
        return event["id"]

    def flush(self, timeout: float = 60.0) -> None:
        """Block until everything queued so far was accepted (or raise the refusal)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while (self._queue or self._sending) and time.monotonic() < deadline:
                self._idle.wait(0.05)
                self._wake.set()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._queue or self._sending:
            raise TimeoutError(f"{len(self._queue)} A/B events still unsent after {timeout:g} s")

    def _run(self) -> None:
        backoff = 0.5
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            while self._queue:
                path, batch = self._take()
                try:
                    body = self.client.post(path, json={"events": batch})
                except CellarAPIError as exc:
                    if exc.status < 500 and exc.status not in (401, 408, 429):
                        self._error = exc
                        self._done(0)
                        continue
                    self._requeue(path, batch)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    break
                except OSError:
                    self._requeue(path, batch)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30)
                    break
                backoff = 0.5
                self.sent += body.get("stored", 0)
                self.duplicates += body.get("duplicates", 0)
                self._done(0)

    def _take(self) -> tuple[str, list[dict[str, Any]]]:
        path, first = self._queue.popleft()
        batch = [first]
        while self._queue and len(batch) < MAX_BATCH and self._queue[0][0] == path:
            batch.append(self._queue.popleft()[1])
        with self._idle:
            self._sending = len(batch)
        return path, batch

    def _requeue(self, path: str, batch: list[dict[str, Any]]) -> None:
        self._queue.extendleft((path, e) for e in reversed(batch))
        self._done(0)

    def _done(self, _: int) -> None:
        with self._idle:
            self._sending = 0
            self._idle.notify_all()


_default: Tracker | None = None
_lock = threading.Lock()


def _tracker() -> Tracker:
    global _default
    with _lock:
        if _default is None:
            _default = Tracker()
            atexit.register(_default.flush)
        return _default


def track(*, test: int, unit_id: str, name: str, value: float = 1.0, **kwargs: Any) -> str:
    """Record one outcome for A/B test `test` (see module docstring). Returns the event id."""
    return _tracker().track(test=test, unit_id=unit_id, name=name, value=value, **kwargs)


def flush_tracked(timeout: float = 60.0) -> None:
    if _default is not None:
        _default.flush(timeout)
