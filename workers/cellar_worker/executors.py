"""Warm executor processes, kept per (team, environment) and never shared between teams.

An executor is a Python process running `cellar_worker.executor_main`: it runs a batch's tasks
one after the other with the SDK's `execute_step` / `evaluate_foreach`, and stays up for the
next batch of the same team and environment (no new interpreter per task: imports stay
warm). Idle ones are stopped after a while, and the oldest idle ones once too many are kept.

Why `subprocess` with a socket rather than a `multiprocessing` context: a spawn or forkserver
child inherits the agent's whole environment (broker URL included) and multiprocessing
pickles what comes back. Here the child gets an environment built from an allow-list
(`executor_environment`), only the socket among the agent's descriptors (`close_fds`), its
own session (a signal for the agent's terminal never reaches user code; the agent kills
the whole group, user subprocesses too) and JSON messages only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger(__name__)

# What an executor may inherit from the agent's environment: the basics a Python process and
# common ML libraries expect, and the credentials of the artifact store (S3) it writes to.
ALLOWED_ENV = {
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "PYTHONPATH", "PYTHONIOENCODING", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
}  # fmt: skip
# Never, whatever an operator adds: the broker, the database, the server's secrets.
FORBIDDEN_ENV = {
    "DATABASE_URL", "REDIS_URL", "CELLAR_BROKER_URL", "CELERY_BROKER_URL", "BROKER_URL",
    "CELLAR_SECRET_KEY", "DJANGO_SETTINGS_MODULE", "CELLAR_ADMIN_PASSWORD", "CELLAR_WORKER_TOKEN",
}  # fmt: skip


def executor_environment(
    *, artifact_store_url: str, source: dict[str, str] | None = None, extra: Iterable[str] = ()
) -> dict[str, str]:
    """The environment an executor starts with: the allow-list (plus `extra` names, the locale's
    LC_* variables) from `source`, and the artifact store. Never broker or database credentials."""
    source = dict(os.environ if source is None else source)
    allowed = ALLOWED_ENV | set(extra)
    env = {k: v for k, v in source.items() if (k in allowed or k.startswith("LC_")) and k not in FORBIDDEN_ENV}
    env["ARTIFACT_STORE_URL"] = artifact_store_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ExecutorGone(Exception):
    """The executor process ended while running a task."""

    def __init__(self, message: str, *, reason: str | None = None, returncode: int | None = None):
        super().__init__(message)
        self.reason = reason  # "cancel" | "stale" | "timeout" when the agent killed it; None when it died
        self.returncode = returncode


class Executor:
    """One warm process for one (team, environment)."""

    def __init__(self, team: str, environment: str, *, env: dict[str, str], start_timeout: float = 120.0):
        self.team = team
        self.environment = environment
        self.workdir = tempfile.mkdtemp(prefix=f"cellar-executor-{team}-")
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cellar_worker.executor_main", str(theirs.fileno())],
                env=env,
                cwd=self.workdir,
                pass_fds=[theirs.fileno()],
                close_fds=True,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self._lock = threading.Lock()
        self.kill_reason: str | None = None
        self.last_used = time.monotonic()
        self.tasks_run = 0
        # The batch whose step, source and parameters this process already holds (batches.py
        # sends them once per batch and executor, not with every task).
        self.known_static: str | None = None
        if not self.conn.poll(start_timeout):
            self.kill("start")
            self.close()
            raise ExecutorGone(f"the executor did not start within {start_timeout:g}s")
        try:
            hello = json.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.close()
            raise ExecutorGone(
                f"the executor exited at start (code {self.proc.wait()}); its error is in the agent's log"
            ) from None
        self.pid: int = hello["pid"]

    @property
    def key(self) -> tuple[str, str]:
        return (self.team, self.environment)

    def alive(self) -> bool:
        return self.kill_reason is None and self.proc.poll() is None

    def run(self, request: dict[str, Any], *, deadline: float | None = None) -> dict[str, Any]:
        """Send one task, wait for its answer. `deadline` (monotonic) kills the process when passed.

        Raises `ExecutorGone` when the process ends first: killed by us (`reason` says why)
        or died on its own (SIGKILL, segfault, out of memory).
        """
        self.last_used = time.monotonic()
        try:
            self.conn.send_bytes(json.dumps(request).encode())
            while True:
                wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
                if self.conn.poll(wait):
                    answer = json.loads(self.conn.recv_bytes())
                    self.tasks_run += 1
                    self.last_used = time.monotonic()
                    return answer
                if self.proc.poll() is not None:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self.kill("timeout")
                    break
        except (EOFError, OSError):
            pass
        raise self._gone()

    def _gone(self) -> ExecutorGone:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        code = self.proc.returncode
        reason = self.kill_reason
        if reason is None:
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return ExecutorGone(f"the executor process {self.pid} died ({how})", returncode=code)
        return ExecutorGone(f"the executor process {self.pid} was stopped ({reason})", reason=reason, returncode=code)

    def kill(self, reason: str) -> None:
        """Stop the process and everything it started (its process group), at once."""
        with self._lock:
            if self.kill_reason is None:
                self.kill_reason = reason
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        self.kill(self.kill_reason or "closed")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.conn.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class ExecutorPool:
    """Executors by (team, environment): an idle one is reused, else a new one starts.

    `devices` (GPU pools): one executor per GPU. Each executor starts with CUDA_VISIBLE_DEVICES
    set to one device no busy executor holds, so two steps never share a GPU; an idle executor
    holding the device a new one needs is stopped first (its memory on the GPU is freed). The
    agent's concurrency equals the number of devices, so a free device always exists.
    `gpu_fallback`: a GPU pool on a machine without one; executors see no device and
    CELLAR_GPU_FALLBACK=1, so a step can tell it runs on the CPU.
    """

    def __init__(
        self,
        *,
        env: dict[str, str],
        idle_seconds: float = 600.0,
        max_idle: int = 8,
        devices: list[str] | None = None,
        gpu_fallback: bool = False,
    ):
        self.env = env
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self.devices = list(devices or [])
        self.gpu_fallback = gpu_fallback
        self._device_of: dict[Executor, str] = {}
        self._idle: list[Executor] = []  # oldest release first
        self._busy: set[Executor] = set()
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def acquire(self, team: str, environment: str) -> Executor:
        with self._lock:
            for executor in reversed(self._idle):  # the most recently used: its imports are warmest
                if executor.key == (team, environment) and executor.alive():
                    self._idle.remove(executor)
                    self._busy.add(executor)
                    return executor
        if self.devices:
            return self._acquire_on_device(team, environment)
        env = self.env
        if self.gpu_fallback:
            env = {**self.env, "CUDA_VISIBLE_DEVICES": "", "CELLAR_GPU_FALLBACK": "1"}
        executor = Executor(team, environment, env=env)
        with self._lock:
            self._busy.add(executor)
        logger.info("started executor %s for team %s (environment %s)", executor.pid, team, environment[:12])
        return executor

    def _acquire_on_device(self, team: str, environment: str) -> Executor:
        evict: list[Executor] = []
        with self._free:
            while True:
                held_busy = {self._device_of.get(e) for e in self._busy}
                free = [d for d in self.devices if d not in held_busy]
                if free:
                    held_idle = {self._device_of.get(e): e for e in self._idle}
                    device = next((d for d in free if d not in held_idle), free[0])
                    if device in held_idle:
                        evict.append(held_idle[device])
                        self._idle.remove(held_idle[device])
                        self._device_of.pop(held_idle[device], None)
                    break
                self._free.wait(timeout=1.0)
            placeholder = _DeviceClaim(device)
            self._busy.add(placeholder)  # type: ignore[arg-type]
            self._device_of[placeholder] = device  # type: ignore[index]
        for old in evict:
            old.close()
        try:
            executor = Executor(team, environment, env={**self.env, "CUDA_VISIBLE_DEVICES": device})
        finally:
            with self._free:
                self._busy.discard(placeholder)  # type: ignore[arg-type]
                self._device_of.pop(placeholder, None)  # type: ignore[call-overload]
                self._free.notify_all()
        with self._free:
            self._busy.add(executor)
            self._device_of[executor] = device
        logger.info("started executor %s for team %s on GPU %s", executor.pid, team, device)
        return executor

    def device_of(self, executor: Executor) -> str | None:
        with self._lock:
            return self._device_of.get(executor)

    def release(self, executor: Executor) -> None:
        """Back to the idle list if it is still usable; a killed or dead one is cleaned up."""
        evicted = []
        with self._lock:
            self._busy.discard(executor)
            if executor.alive():
                executor.last_used = time.monotonic()
                self._idle.append(executor)
                while len(self._idle) > self.max_idle:
                    evicted.append(self._idle.pop(0))
            else:
                evicted.append(executor)
            for old in evicted:
                self._device_of.pop(old, None)
            self._free.notify_all()
        for old in evicted:
            old.close()

    def discard(self, executor: Executor) -> None:
        with self._lock:
            self._busy.discard(executor)
            self._device_of.pop(executor, None)
            self._free.notify_all()
        executor.close()

    def idle(self) -> list[Executor]:
        with self._lock:
            return list(self._idle)

    def reap(self, *, now: float | None = None) -> int:
        """Stop executors idle for longer than `idle_seconds` (and dead ones). Returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            expired = [e for e in self._idle if now - e.last_used >= self.idle_seconds or not e.alive()]
            self._idle = [e for e in self._idle if e not in expired]
            for old in expired:
                self._device_of.pop(old, None)
        for executor in expired:
            executor.close()
        return len(expired)

    def start_reaper(self) -> None:
        def loop() -> None:
            while not self._stop.wait(max(1.0, min(30.0, self.idle_seconds / 4))):
                try:
                    self.reap()
                except Exception:  # noqa: BLE001 - the reaper must keep running
                    logger.exception("reaping idle executors failed")

        self._reaper = threading.Thread(target=loop, name="cellar-executor-reaper", daemon=True)
        self._reaper.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            everything = self._idle + list(self._busy)
            self._idle, self._busy = [], set()
        for executor in everything:
            executor.close()


class _DeviceClaim:
    """Holds a device while its executor starts (outside the lock: a start takes a while)."""

    def __init__(self, device: str):
        self.device = device
