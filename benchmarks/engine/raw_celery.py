"""Raw Celery, one message per task: the peer the engine's end-to-end throughput is held to.

The worker is a real `celery worker -P prefork -c W` process (W = the same worker process count
as Cellar's pool agent), on the same private Redis; the driver is this process, one
`apply_async` per task, timed from the first send until the counter file holds N bytes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tracking.servers import Cleanup

from engine import procs

HERE = Path(__file__).resolve().parent


class RawCelery:
    def __init__(self, cleanup: Cleanup, redis_url: str, workers: int, home: Path):
        self.home = home
        self.workers = workers
        self.counter = home / "counter"
        self.counter.touch()
        self.broker = procs.kombu_url(redis_url, db=1)
        os.environ["BENCH_BROKER_URL"] = self.broker  # before noop_app is imported (its app reads it)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(BENCH_BROKER_URL=self.broker, BENCH_COUNTER=str(self.counter))
        log = home / "raw-celery.log"
        cmd = [
            str(procs.BIN / "celery"), "-A", "noop_app", "worker", "-P", "prefork", "-c", str(workers),
            "-Q", "bench.noop", "--hostname", "bench-noop@%h", "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        # WARNING hides the "ready" line; the worker is up when it has run the warm-up tasks.
        self.proc = procs.spawn(cleanup, "raw celery worker", cmd, env, HERE, log)
        self.log = log
        sys.path.insert(0, str(HERE))
        from noop_app import app, noop  # noqa: PLC0415 - needs BENCH_BROKER_URL first

        self.app, self.noop = app, noop

    def count(self) -> int:
        return self.counter.stat().st_size

    def _wait(self, target: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw Celery: {self.count()} of {target} tasks ran within {timeout:.0f}s")
            if self.proc.poll() is not None:
                raise RuntimeError(f"raw Celery worker exited:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.005)

    def warm_up(self, n: int = 200) -> float:
        started = time.monotonic()
        self.counter.write_bytes(b"")
        for _ in range(n):
            self.noop.apply_async()
        self._wait(n, timeout=180)
        return time.monotonic() - started

    def measure(self, n: int, trees: dict[str, int]) -> dict:
        self.counter.write_bytes(b"")
        meter = procs.CpuMeter({"worker": self.proc.pid, **trees}).start()
        load_before = procs.load()
        started = time.perf_counter()
        for _ in range(n):
            self.noop.apply_async()
        enqueued = time.perf_counter() - started
        self._wait(n, timeout=120 + n / 20)
        wall = time.perf_counter() - started
        cpu = meter.stop()
        ran = self.count()
        return {
            "n": n,
            "tasks": n,
            "wall_s": wall,
            "enqueue_s": enqueued,
            "tasks_per_s": n / wall,
            "cpu_s": cpu,
            "cpu_ms_per_task": 1000 * sum(cpu.values()) / n,
            "verified": ran == n,
            "check": f"{ran:,} of {n:,} no-op tasks ran (counter file)",
            "others_cores": meter.others_cores,
            "load": [load_before, procs.load()],
        }
