"""A buffered, asynchronous outbox: `put(record)` costs a deque append on the request path; a
background thread POSTs batches to the control plane with the serve credential.

Prediction logs use it, and so do A/B exposures (the abtest module makes its own Outbox with its
own URL). Records wait in memory while the control plane is unreachable (bounded: the oldest are
dropped past `capacity`, counted in `dropped`) and are retried on the next flush.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

logger = logging.getLogger("cellar.serve.outbox")


class Outbox:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        flush_seconds: float = 2.0,
        max_batch: int = 2000,
        capacity: int = 100_000,
        envelope: str = "records",
        before_flush: Callable[[], None] | None = None,
        session: requests.Session | None = None,
    ):
        self.url = url
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self.envelope = envelope
        self.before_flush = before_flush
        self._queue: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._session = session or requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self.sent = 0
        self.failures = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def put(self, record: dict[str, Any]) -> None:
        self._queue.append(record)

    def start(self) -> Outbox:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"outbox:{self.url}", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, flush: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if flush:
            self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Send what is queued, in batches; a failed batch goes back to the front. Returns records sent."""
        with self._flush_lock:
            if self.before_flush is not None:
                try:
                    self.before_flush()
                except Exception:  # a collector bug must not stop the outbox
                    logger.exception("outbox collector failed")
            sent = 0
            while self._queue:
                batch = []
                while self._queue and len(batch) < self.max_batch:
                    batch.append(self._queue.popleft())
                try:
                    response = self._session.post(self.url, json={self.envelope: batch}, timeout=10)
                    ok = response.status_code < 300
                except requests.RequestException as exc:
                    ok, response = False, exc
                status = getattr(response, "status_code", 0)
                if not ok and 400 <= status < 500 and status not in (401, 403, 408, 429):
                    # The control plane refused the records themselves: resending cannot help.
                    self.dropped += len(batch)
                    logger.error("outbox: %s refused %d records: %s", self.url, len(batch), response.text[:500])
                    continue
                if not ok:
                    self.failures += 1
                    logger.warning("outbox post to %s failed (%s); %d records kept", self.url, response, len(batch))
                    self._queue.extendleft(reversed(batch))
                    break
                sent += len(batch)
            self.sent += sent
            return sent
