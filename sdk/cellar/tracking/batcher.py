"""Background batching: a training loop enqueues, one daemon thread sends.

A logging call appends a small tuple to a deque and returns (about a microsecond):

    ("m", key, value, step, timestamp_ms)   ("p", key, value)   ("t", key, value)
    ("a", artifact_path)                    (offline runs only)

The thread wakes every `interval` seconds, or as soon as `trigger` items wait, and
drains the queue into batches that respect log-batch's limits. Delivery is in order
and at least once: a batch is retried (backoff 0.5 s doubling to 30 s) until the
server takes it, and the server's writes are idempotent, so a batch resent after a
lost answer changes nothing. While the server is away the queue keeps growing; past
`max_queue` items its head moves to a folder on disk (the offline format), which is
sent before the rest of the queue once the server is back: order is kept and memory
stays bounded. A refusal (4xx) is kept and raised from the next logging call, from
`flush()` or from the end of the run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from cellar.tracking.errors import TrackingError, TransientError
from cellar.tracking.offline import RecordReader, RunFolder, encode_double, item_to_record, record_to_item

logger = logging.getLogger("cellar.tracking")

MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ENTITIES = 1000
MAX_BODY_BYTES = 1_000_000  # the server's limit is 1 MiB; keep room for the envelope


class BatchBuilder:
    """Collects items into one log-batch request within the server's limits.

    `add` answers False when the item does not fit; it then starts the next batch. A
    param logged again with another value also starts the next batch, so the server
    answers it with its own "Changing param values is not allowed" message.
    """

    __slots__ = ("items", "_metrics", "_params", "_tags", "_bytes")

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self._metrics = 0
        self._params: dict[str, str] = {}
        self._tags: set[str] = set()
        self._bytes = 64

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: tuple) -> bool:
        kind = item[0]
        entities = self._metrics + len(self._params) + len(self._tags)
        if kind == "m":
            if self._metrics >= MAX_METRICS or entities >= MAX_ENTITIES:
                return False
            size = len(item[1]) + 96
            if self._bytes + size > MAX_BODY_BYTES:
                return False
            self._metrics += 1
        elif kind == "p":
            key, value = item[1], item[2]
            if key in self._params:
                if self._params[key] != value:
                    return False
                self.items.append(item)  # the same value again: harmless, sent once
                return True
            if len(self._params) >= MAX_PARAMS or entities >= MAX_ENTITIES:
                return False
            size = len(json.dumps(key)) + len(json.dumps(value)) + 24
            if self._bytes + size > MAX_BODY_BYTES and self.items:
                return False
            self._params[key] = value
        elif kind == "t":
            key = item[1]
            size = len(json.dumps(key)) + len(json.dumps(item[2])) + 24
            if key not in self._tags:
                if len(self._tags) >= MAX_TAGS or entities >= MAX_ENTITIES:
                    return False
            if self._bytes + size > MAX_BODY_BYTES and self.items:
                return False
            self._tags.add(key)
        else:
            raise ValueError(f"cannot send {item!r} in a log-batch")
        self._bytes += size
        self.items.append(item)
        return True


class ChunkBuilder:
    """For the offline folder: any items, a thousand lines per write."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: tuple) -> bool:
        if len(self.items) >= 1000:
            return False
        self.items.append(item)
        return True


def log_batch_body(run_id: str, items: list[tuple]) -> dict:
    """The runs/log-batch body: params, then tags (last value wins), then metrics in order."""
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    metrics = []
    for item in items:
        kind = item[0]
        if kind == "m":
            metrics.append({"key": item[1], "value": encode_double(item[2]), "step": item[3], "timestamp": item[4]})
        elif kind == "p":
            params.setdefault(item[1], item[2])
        elif kind == "t":
            tags.pop(item[1], None)
            tags[item[1]] = item[2]
    body: dict = {"run_id": run_id}
    if params:
        body["params"] = [{"key": k, "value": v} for k, v in params.items()]
    if tags:
        body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    if metrics:
        body["metrics"] = metrics
    return body


class HttpSink:
    """Sends items to one run's runs/log-batch."""

    new_builder = BatchBuilder

    def __init__(self, transport, run_id: str):
        self.transport = transport
        self.run_id = run_id

    def write(self, items: list[tuple]) -> None:
        self.transport.call("POST", "runs/log-batch", log_batch_body(self.run_id, items))


class FolderSink:
    """Appends items to an offline run's records.jsonl."""

    new_builder = ChunkBuilder

    def __init__(self, folder: RunFolder):
        self.folder = folder

    def write(self, items: list[tuple]) -> None:
        try:
            self.folder.append([item_to_record(i) for i in items])
        except OSError as exc:
            raise TrackingError(0, "OFFLINE_WRITE_FAILED", f"cannot write {self.folder.path}: {exc}") from exc


class _Marker:
    """Put in the queue by flush(): set once everything ahead of it is acknowledged."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


class Batcher:
    """One run's queue and the daemon thread that drains it into `sink`."""

    def __init__(
        self,
        sink: HttpSink | FolderSink,
        *,
        interval: float = 1.0,
        trigger: int = 1000,
        max_queue: int = 1_000_000,
        spill: Callable[[], RunFolder] | None = None,
        name: str = "cellar-batcher",
    ):
        self.sink = sink
        self.interval = interval
        self.trigger = trigger
        self.max_queue = max_queue
        self.queue: deque = deque()
        self.error: TrackingError | None = None  # the first refusal not yet raised; read on every log call
        self.spilled_to: RunFolder | None = None  # what is left for `cellar sync` after close()
        self._errors: list[TrackingError] = []
        self._error_lock = threading.Lock()
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._urgent = False
        self._closing = False
        self._unreachable = False
        self._new_builder = sink.new_builder
        self._spill_factory = spill
        self._spill: RunFolder | None = None
        self._spill_reader: RecordReader | None = None
        self._spill_acked = 0
        self._spill_pending: deque = deque()
        self._spill_markers: list[tuple[int, _Marker]] = []
        self._inflight_rest: list[tuple] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- the caller's side ------------------------------------------------------------

    def put(self, item: tuple) -> None:
        queue = self.queue
        queue.append(item)
        if len(queue) >= self.trigger and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is acknowledged; False if `timeout` passed first."""
        if not self._thread.is_alive():
            return not self.queue
        marker = _Marker()
        self.queue.append(marker)
        self._urgent = True
        self._wake.set()
        return marker.event.wait(timeout)

    def close(self, timeout: float | None = None) -> RunFolder | None:
        """Deliver what is queued, waiting at most `timeout` seconds; what could not be sent by
        then is saved to the offline folder, which is returned (None when everything landed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delivered = self.flush(timeout)
        self._closing = True
        if not delivered:
            self._abort.set()
        self._wake.set()
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join()
        return self.spilled_to

    def take_error(self) -> TrackingError | None:
        """The refusals not yet reported, as one error (the first, counting the others)."""
        with self._error_lock:
            errors, self._errors = self._errors, []
            self.error = None
        if not errors:
            return None
        first = errors[0]
        if len(errors) == 1:
            return first
        return TrackingError(first.status, first.code, f"{first.message} (and {len(errors) - 1} more refused batches)")

    def pending(self) -> int:
        return sum(1 for i in self.queue if i.__class__ is not _Marker) + len(self._spill_pending)

    # --- the thread's side -------------------------------------------------------------

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            wait = self.interval - (time.monotonic() - last)
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()
            urgent, self._urgent = self._urgent, False
            due = urgent or self._closing or time.monotonic() - last >= self.interval
            try:
                completed = self._drain(due)
            except Exception:  # a bug here must not stop the thread: later items still need sending
                logger.exception("cellar: the background sender failed")
                completed = True
            if due:
                last = time.monotonic()
            if not completed:
                self._save_for_later()
                return
            if self._closing and not self.queue and self._spill is None:
                return

    def _drain(self, due: bool) -> bool:
        """Send what is queued (all of it when `due`, else only full batches). False if aborted."""
        while True:
            self._maybe_spill()
            if self._spill is not None and self._spill_has_more():
                batch, from_spill = self._take_spill(), True
            else:
                if self._spill is not None:
                    self._finish_spill()
                if not due and len(self.queue) < self.trigger:
                    return True
                batch, from_spill = self._take_memory(), False
                if not batch:
                    if not self.queue:
                        return True
                    continue  # only markers were at the head; they are released now
            done = self._deliver(batch, from_spill)
            if from_spill:
                self._ack_spill(done)
            if done < len(batch):
                self._inflight_rest = [] if from_spill else batch[done:]
                return False

    def _take_memory(self) -> list[tuple]:
        builder = self._new_builder()
        queue = self.queue
        while queue:
            head = queue[0]
            if head.__class__ is _Marker:
                if builder.items:
                    break  # released once this batch is acknowledged
                queue.popleft()
                head.event.set()
                continue
            if not builder.add(head):
                break
            queue.popleft()
        return builder.items

    def _deliver(self, batch: list[tuple], from_spill: bool) -> int:
        """Send `batch` until acknowledged; returns how many items are done (all unless aborted).

        A batch taken from memory that is still unsent when the queue outgrows `max_queue`
        is handed over to the spill folder, ahead of the queue: the spill sends it first.
        """
        parts = [batch]
        done = 0
        delay = 0.5
        while parts:
            part = parts[0]
            try:
                self.sink.write(part)
            except TransientError as exc:
                if not self._unreachable:
                    self._unreachable = True
                    logger.warning("cellar: %s; retrying, logging continues meanwhile", exc)
                if self._over_limit():
                    if not from_spill:
                        self._move_to_spill([item for p in parts for item in p])
                        return len(batch)
                    self._move_to_spill()  # behind the batch in flight, which the spill holds already
                if self._abort.wait(delay):
                    return done
                delay = min(delay * 2, 30.0)
                continue
            except TrackingError as exc:
                split = _split_refused(part)
                if split is not None:
                    parts[0:1] = split
                    continue
                self._refused(exc, part)
            if self._unreachable:
                self._unreachable = False
                logger.warning("cellar: the server answers again; sending the backlog")
            parts.pop(0)
            done += len(part)
            delay = 0.5
        return done

    def _refused(self, exc: TrackingError, items: list[tuple]) -> None:
        logger.error("cellar: the server refused %d logged item(s): %s", len(items), exc.message)
        with self._error_lock:
            self._errors.append(exc)
            if self.error is None:
                self.error = self._errors[0]

    # --- spilling to disk ----------------------------------------------------------------

    def _over_limit(self) -> bool:
        return self._spill_factory is not None and len(self.queue) > self.max_queue

    def _maybe_spill(self) -> None:
        if self._over_limit():
            self._move_to_spill()

    def _move_to_spill(self, front: list[tuple] = ()) -> None:
        """Move `front` and then the queue's current content to the tail of the spill folder."""
        if self._spill is None:
            self._spill = self._spill_factory()
            self._spill_reader = RecordReader(self._spill)
            self._spill_acked = 0
            logger.warning("cellar: the server is unreachable and the queue is full; spilling to %s", self._spill.path)
        records = [item_to_record(i) for i in front]
        queue = self.queue
        for _ in range(len(queue)):  # what the producer appends meanwhile stays for the next round
            item = queue.popleft()
            if item.__class__ is _Marker:
                self._spill_markers.append((self._spill.lines_written + len(records), item))
                continue
            records.append(item_to_record(item))
            if len(records) >= 10_000:
                self._spill.append(records)
                records = []
        if records:
            self._spill.append(records)

    def _spill_has_more(self) -> bool:
        return bool(self._spill_pending) or self._spill_reader.line < self._spill.lines_written

    def _take_spill(self) -> list[tuple]:
        builder = self._new_builder()
        pending = self._spill_pending
        while True:
            if not pending:
                record = self._spill_reader.read()
                if record is None:
                    break
                pending.append(record_to_item(record))
            if not builder.add(pending[0]):
                break
            pending.popleft()
        return builder.items

    def _ack_spill(self, count: int) -> None:
        self._spill_acked += count
        self._spill.save_state({"records_done": self._spill_acked})
        still = []
        for position, marker in self._spill_markers:
            if position <= self._spill_acked:
                marker.event.set()
            else:
                still.append((position, marker))
        self._spill_markers = still

    def _finish_spill(self) -> None:
        """Everything spilled is on the server: the folder goes away."""
        self._spill_reader.close()
        self._spill.remove()
        for _, marker in self._spill_markers:
            marker.event.set()
        self._spill_markers = []
        self._spill = self._spill_reader = None

    def _save_for_later(self) -> None:
        """Aborted at close: whatever is unsent goes to the offline folder for `cellar sync`."""
        rest = self._inflight_rest
        if self._spill_factory is None or (self._spill is None and not rest and not self.pending()):
            return
        self._move_to_spill(rest)
        self._spill.save_state({"records_done": self._spill_acked})
        self._spill_reader.close()
        self.spilled_to = self._spill
        for _, marker in self._spill_markers:
            marker.event.set()
        self._spill_markers = []


def _split_refused(part: list[tuple]) -> list[list[tuple]] | None:
    """How to narrow a refused batch down to what the server objects to, or None to report it whole.

    Keys and values are checked before they are queued, so a refusal is either about a
    param (logged earlier with another value) or about the run itself (deleted, no
    access), which every half would repeat: only params are narrowed down.
    """
    params = [i for i in part if i[0] == "p"]
    if params and len(params) < len(part):
        return [params, [i for i in part if i[0] != "p"]]
    if len(params) > 1:
        half = len(params) // 2
        return [params[:half], params[half:]]
    return None
