"""Per-minute prediction counters and input sampling, kept in memory on the request path and
handed to the outbox at each flush (one record per deployment × version × minute)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from cellar.models.drift import LATENCY_EDGES_MS, latency_bucket
from cellar_worker.serve.outbox import Outbox

_BUCKETS = len(LATENCY_EDGES_MS) + 1


class PredictionStats:
    def __init__(self, outbox: Outbox):
        self.outbox = outbox
        self._lock = threading.Lock()
        self._buckets: dict[tuple[int, str, int], list[Any]] = {}
        outbox.before_flush = self.drain

    def record(self, deployment_id: int, version_id: str, latency_ms: float, rows: int, error: bool) -> None:
        key = (deployment_id, version_id, int(time.time()) // 60 * 60)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [0, 0, 0, [0] * _BUCKETS]
            bucket[0] += 1
            bucket[1] += rows
            bucket[2] += error
            bucket[3][latency_bucket(latency_ms)] += 1

    def sample(self, deployment_id: int, version_id: str, rate: float, columns: dict[str, list], n_rows: int) -> None:
        """Keep each row's inputs with probability `rate` (drift's raw material)."""
        if rate <= 0:
            return
        if rate >= 1:
            picked = range(n_rows)
        else:
            rand = random.random
            picked = [i for i in range(n_rows) if rand() < rate]
            if not picked:
                return
        names = list(columns)
        rows = [{n: columns[n][i] for n in names} for i in picked]
        self.outbox.put(
            {
                "kind": "sample",
                "deployment_id": deployment_id,
                "version_id": version_id,
                "at": time.time(),
                "rows": rows,
            }
        )

    def drain(self) -> None:
        with self._lock:
            buckets, self._buckets = self._buckets, {}
        for (deployment_id, version_id, minute), (requests, rows, errors, hist) in buckets.items():
            last = max((i for i, c in enumerate(hist) if c), default=-1)
            self.outbox.put(
                {
                    "kind": "stats",
                    "deployment_id": deployment_id,
                    "version_id": version_id,
                    "minute": minute,
                    "requests": requests,
                    "rows": rows,
                    "errors": errors,
                    "latency_hist": hist[: last + 1],
                }
            )
