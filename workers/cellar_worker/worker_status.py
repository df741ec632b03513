"""What a pool agent says about itself, every few seconds, to POST /api/v1/compute/workers/heartbeats/.

host, pool, pid, its worker id (the one task attempts record), the GPUs it was given (from
`nvidia-smi` when present), whether it is a GPU pool running on the CPU (CELLAR_GPU_FALLBACK),
how many tasks it holds, and CPU / memory / GPU utilization (psutil when installed, else /proc;
the worker image has no psutil). It authenticates with the worker credential
(CELLAR_WORKER_TOKEN); without one the agent runs and simply does not report.

Leases are not renewed here: heartbeats.py renews them per task, and a dead worker's leases
expire on their own, which is how the engine notices it (engine/reconcile.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

logger = logging.getLogger(__name__)

NVIDIA_QUERY = "index,name,uuid,memory.total,memory.used,utilization.gpu"


def nvidia_gpus(devices: list[str] | None = None) -> list[dict[str, Any]]:
    """The GPUs nvidia-smi sees ([] without it), narrowed to `devices` (indexes) when given."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        out = subprocess.run(
            [binary, f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 6:
            continue
        gpus.append(
            {
                "index": _int(parts[0]),
                "name": parts[1],
                "uuid": parts[2],
                "memory_total": _int(parts[3]),  # MiB
                "memory_used": _int(parts[4]),
                "utilization": _int(parts[5]),  # percent
            }
        )
    if devices:
        wanted = set(devices)
        gpus = [gpu for gpu in gpus if str(gpu["index"]) in wanted or gpu["uuid"] in wanted]
    return gpus


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


class ProcessUsage:
    """CPU percent (of one core, like top) and memory of this process and its children (the executors)."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def sample(self) -> dict[str, Any]:
        try:
            import psutil
        except ImportError:
            return self._from_proc()
        me = psutil.Process()
        processes = [me, *me.children(recursive=True)]
        cpu_seconds = rss = 0.0
        for proc in processes:
            try:
                times = proc.cpu_times()
                cpu_seconds += times.user + times.system
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        total = psutil.virtual_memory().total
        return self._finish(cpu_seconds, int(rss), total)

    def _from_proc(self) -> dict[str, Any]:
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        cpu_seconds = rss = 0.0
        for pid in [os.getpid(), *_descendants(os.getpid())]:
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                cpu_seconds += (int(fields[11]) + int(fields[12])) / ticks
                rss += int(open(f"/proc/{pid}/statm").read().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return self._finish(cpu_seconds, int(rss), total)

    def _finish(self, cpu_seconds: float, rss: int, total: int) -> dict[str, Any]:
        now = time.monotonic()
        percent = None
        if self._last is not None and now > self._last[0]:
            percent = round(100 * (cpu_seconds - self._last[1]) / (now - self._last[0]), 1)
        self._last = (now, cpu_seconds)
        return {
            "cpu_percent": percent,
            "memory_rss": rss,
            "memory_percent": round(100 * rss / total, 2) if total else None,
        }


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class WorkerReporter:
    """A thread posting this agent's status every `interval` seconds (and once more as it stops)."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        worker: str,
        pool: str,
        concurrency: int,
        current_tasks: Callable[[], int],
        devices: list[str] | None = None,
        gpu_fallback: bool = False,
        interval: float = 5.0,
    ):
        self.url = f"{api_url.rstrip('/')}/api/v1/compute/workers/heartbeats/"
        self.token = token
        self.worker = worker
        self.pool = pool
        self.concurrency = concurrency
        self.current_tasks = current_tasks
        self.devices = devices or []
        self.gpu_fallback = gpu_fallback
        self.interval = interval
        self.state = "running"
        self.started_at = datetime.now(UTC).isoformat()
        self.usage = ProcessUsage()
        self.session = requests.Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def body(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "pool": self.pool,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": self.state,
            "concurrency": self.concurrency,
            "gpus": nvidia_gpus(self.devices) if self.devices else [],
            "gpu_fallback": self.gpu_fallback,
            "current_tasks": self.current_tasks(),
            "started_at": self.started_at,
            **self.usage.sample(),
        }

    def report(self) -> bool:
        try:
            response = self.session.post(
                self.url, json=self.body(), headers={"Authorization": f"Bearer {self.token}"}, timeout=10
            )
        except requests.RequestException as exc:
            logger.warning("worker status: cannot reach %s: %s", self.url, exc)
            return False
        if response.status_code >= 300:
            logger.warning("worker status refused: HTTP %s %s", response.status_code, response.text[:300])
            return False
        return True

    def start(self) -> None:
        def loop() -> None:
            self.report()
            while not self._stop.wait(self.interval):
                try:
                    self.report()
                except Exception:  # noqa: BLE001 - reporting must never stop the agent
                    logger.exception("worker status report failed")

        self._thread = threading.Thread(target=loop, name="cellar-worker-status", daemon=True)
        self._thread.start()

    def draining(self) -> None:
        """SIGTERM arrived: the agent finishes its current batches and stops; say so at once."""
        self.state = "draining"
        self.report()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 15)
        self.state = "stopped"
        self.report()
        self.session.close()
