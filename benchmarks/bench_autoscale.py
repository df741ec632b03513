"""The local supervisor's autoscaling against a pool fixed at its maximum, same machine, same run.

    .venv/bin/python benchmarks/bench_autoscale.py [--n 1000] [--sleep 0.2] [--max-workers CORES]
        [--engine sqlite|postgres] [--interval 2] [--cooldown 15] [--order autoscale,fixed] [--json OUT]

The Procfile's processes on a private database and Redis (web, control, and `cellar-worker
supervise` in place of a fixed agent; benchmarks/engine/cellar_side.py), and a notebook whose
foreach step sleeps `--sleep` seconds per element (N = 1,000 elements of 200 ms by default).

- **autoscale**: pool `cpu` with min 0, max = the machine's cores (one task at once per agent),
  idle when the run starts (no agent). Measured: time from the POST until the pool runs at max
  (every agent started and reporting), the run's wall time, and the time from the run's end
  (queue empty) until the pool is back to zero agents (the supervisor's cool-down, `--cooldown`,
  dominates it).
- **fixed**: the same pool with min = max, every agent up before the POST: the ideal.

The ratio autoscale / fixed of the run's wall time is the cost of starting from zero (the
target is within 15% at N = 1,000). The dispatcher's window is sized for max agents
(CELLAR_ENGINE_POOL_WORKERS = max), as an operator sets it for an autoscaled pool. Agents report
every second (CELLAR_WORKER_REPORT_S=1) and the supervisor polls every `--interval` seconds.
Every run is verified as bench_engine verifies it (every task record succeeded once, outputs stored).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import cellar_side, procs  # noqa: E402
from tracking.servers import Cleanup, make_tmp, stop_group  # noqa: E402

POOL = "cpu"


def notebook(sleep: float) -> dict:
    def cell(source: str, *tags: str):
        return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})

    node = nbformat.v4.new_notebook(
        cells=[
            cell("n = 200", "parameters"),
            cell("items = list(range(n))", "step:make"),
            cell(f"import time\ntime.sleep({sleep})\nx = 2 * item", "step:work", "foreach:items"),
            cell("total = sum(x)\ncount = len(x)", "step:join", "join"),
            cell("assert count == n and total == n * (n - 1), (count, total)", "step:end"),
        ]
    )
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.loads(nbformat.writes(node))


class AutoscaleStack(cellar_side.CellarStack):
    """Web and control as cellar_side starts them; the supervisor instead of a fixed agent."""

    def __init__(self, *args, sleep: float, interval: float, cooldown: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleep = sleep
        self.interval = interval
        self.cooldown = cooldown
        self.worker_token = ""
        self.samples: list[tuple[float, int, int, int]] = []  # (time, agents reporting, processes, demand)

    def prepare(self) -> None:
        super().prepare()
        self.worker_token = self._manage("manage.py", "cellar_worker_token").strip()

    def set_pool(self, *, low: int, high: int) -> None:
        code = (
            "import django; django.setup()\n"
            "from cellar_server.compute.models import Pool\n"
            f"Pool.objects.update_or_create(name={POOL!r}, defaults=dict(min_workers={low}, max_workers={high},"
            " concurrency=1, gpus=0))\n"
        )
        self._manage("-c", code)

    def start(self) -> dict[str, float]:
        self.web, self.control, started = procs.start_web_and_control(
            self.cleanup, self.env, self.home, self.port, self.url
        )
        return started

    def start_supervisor(self, name: str) -> None:
        env = {k: v for k, v in self.env.items() if k not in ("DATABASE_URL", "CELLAR_SECRET_KEY")}
        env.update(CELLAR_WORKER_TOKEN=self.worker_token, CELLAR_WORKER_REPORT_S="1", CELLAR_SUPERVISOR_GPUS="")
        self.agent = procs.spawn(
            self.cleanup, "supervisor",
            [str(procs.BIN / "cellar-worker"), "supervise", "--pools", POOL, "--interval", str(self.interval),
             "--cooldown", str(self.cooldown)],
            env, procs.REPO, self.home / f"supervisor-{name}.log",
        )  # fmt: skip

    def stop_supervisor(self) -> None:
        stop_group(self.agent, grace=120)

    def promote(self) -> str:
        path = self.home / "autoscale_bench.ipynb"
        path.write_text(json.dumps(notebook(self.sleep)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLAR_") and k != "PYTHONPATH"}
        env.update(CELLAR_URL=self.url, CELLAR_TOKEN=self.token)
        done = subprocess.run(
            [str(procs.BIN / "cellar"), "promote", str(path), "--pipeline", cellar_side.PIPELINE],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"cellar promote failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        self.version = done.stdout.strip().splitlines()[-1]
        return self.version

    # --- watching the pool -------------------------------------------------------------------------

    def pool_state(self) -> tuple[int, int, int]:
        """(agents reporting, agent processes alive, demand)."""
        body = requests.get(
            f"{self.url}/api/v1/compute/pools/{POOL}/",
            headers={"Authorization": f"Bearer {self.worker_token}"},
            timeout=30,
        ).json()
        processes = 0
        if self.agent is not None and self.agent.poll() is None:
            for child in psutil.Process(self.agent.pid).children(recursive=False):
                try:
                    processes += "cellar_worker.cli" in " ".join(child.cmdline())
                except psutil.Error:
                    pass
        return body["workers"], processes, body["demand"]

    def watch(self, stop: threading.Event) -> threading.Thread:
        self.samples = []

        def loop() -> None:
            while not stop.is_set():
                try:
                    self.samples.append((time.time(), *self.pool_state()))
                except (requests.RequestException, psutil.Error, ValueError):
                    pass
                stop.wait(0.25)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def wait_pool(self, predicate, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate(*self.pool_state()):
                return time.monotonic() - started
            time.sleep(0.25)
        raise RuntimeError(f"the pool did not reach the expected state within {timeout:.0f}s; logs in {self.home}")


def measure(stack: AutoscaleStack, side: str, *, n: int, high: int) -> dict:
    low = 0 if side == "autoscale" else high
    stack.set_pool(low=low, high=high)
    stack.start_supervisor(side)
    if side == "autoscale":
        stack.wait_pool(lambda reporting, processes, demand: processes == 0 and reporting == 0, timeout=120)
    else:
        stack.wait_pool(lambda reporting, processes, demand: reporting == high, timeout=180)
    stop = threading.Event()
    watcher = stack.watch(stop)
    posted = time.time()
    result = stack.run(n, timeout=600 + n)
    run_ended = posted + result["wall_s"]  # the run's ended_at as the server recorded it
    back = None
    if side == "autoscale":
        stack.wait_pool(lambda reporting, processes, demand: processes == 0 and reporting == 0, timeout=600)
        back = time.time() - run_ended
    stop.set()
    watcher.join(timeout=5)
    at_max = next((t for t, reporting, _p, _d in stack.samples if reporting >= high), None)
    stack.stop_supervisor()
    return {
        "side": side,
        "n": n,
        "max_workers": high,
        "wall_s": result["wall_s"],
        "verified": result["verified"],
        "check": result["check"],
        "time_to_max_s": None if at_max is None else at_max - posted,
        "back_to_zero_after_run_s": back,
        "peak_reporting": max((sample[1] for sample in stack.samples), default=0),
        "cpu_ms_per_task": result["cpu_ms_per_task"],
        "others_cores": result["others_cores"],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--interval", type=float, default=2.0, help="supervisor poll (s)")
    parser.add_argument("--cooldown", type=float, default=15.0, help="supervisor scale-down cool-down (s)")
    parser.add_argument("--order", default="autoscale,fixed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cleanup = Cleanup()
    rows = []
    try:
        home = make_tmp(cleanup, "autoscale-bench-")
        print(f"autoscale bench: {os.cpu_count()} CPUs; N = {args.n} x {args.sleep}s; max {args.max_workers} agents;"
              f" {args.engine}; {procs.load()}", flush=True)  # fmt: skip
        redis_url, redis_proc = procs.start_redis(cleanup, home)
        stack = AutoscaleStack(
            cleanup, home, redis_url, args.max_workers, args.engine,
            sleep=args.sleep, interval=args.interval, cooldown=args.cooldown,
        )  # fmt: skip
        stack.extra_trees["redis"] = redis_proc.pid
        stack.prepare()
        stack.start()
        print(f"promoted {stack.promote()[:12]}", flush=True)
        for side in args.order.split(","):
            row = measure(stack, side, n=args.n, high=args.max_workers)
            rows.append(row)
            print(json.dumps(row), flush=True)
        for proc in (stack.control, stack.web):
            stop_group(proc, grace=20)
    finally:
        cleanup.run()
    by_side = {row["side"]: row for row in rows}
    if {"autoscale", "fixed"} <= set(by_side):
        auto, fixed = by_side["autoscale"], by_side["fixed"]
        ratio = auto["wall_s"] / fixed["wall_s"]
        print(
            f"\nN = {args.n:,} tasks of {args.sleep * 1000:.0f} ms, max {args.max_workers} agents:\n"
            f"  autoscaled from zero: {auto['wall_s']:.1f}s (at max after {auto['time_to_max_s']:.1f}s; "
            f"back to zero {auto['back_to_zero_after_run_s']:.1f}s after the run ended, cool-down {args.cooldown:g}s)\n"
            f"  fixed at max:         {fixed['wall_s']:.1f}s\n"
            f"  autoscaled / fixed:   {ratio:.2f}x (target <= 1.15)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(row["verified"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
