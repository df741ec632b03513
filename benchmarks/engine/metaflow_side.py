"""Metaflow's local runtime (2.19.39, its own venv): start -> foreach work -> join -> end.

`--setup-metaflow` creates ~/.cache/cellar-bench/metaflow with `pip install metaflow==2.19.39`
(as bench_compile.py does for Kale: its dependencies do not belong in our venv), or point
--metaflow-python (or $METAFLOW_PYTHON) at a Python that has it. The flow is the one of
shared/notes/celery.md §5, run with the same flags:

    USERNAME=bench METAFLOW_DATASTORE_SYSROOT_LOCAL=… python flow.py --no-pylint run --n N \
        --max-workers W --max-num-splits 20000

Wall time is from the command's start to its exit (the local runtime has no separate submit);
CPU is the command's whole process tree (os.wait4: the runtime and every task process it ran).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tracking.servers import stop_group

from engine import procs

HOME = Path.home() / ".cache" / "cellar-bench" / "metaflow"
VERSION = "2.19.39"

FLOW = """
from metaflow import FlowSpec, Parameter, step


class BenchFlow(FlowSpec):
    n = Parameter("n", default=200, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = 2 * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.xs = [i.x for i in inputs]
        self.total = sum(self.xs)
        self.next(self.end)

    @step
    def end(self):
        print("TOTAL", self.total, "COUNT", len(self.xs))


if __name__ == "__main__":
    BenchFlow()
"""


def setup() -> str:
    python = HOME / "bin" / "python"
    if not python.exists():
        print(f"creating {HOME} with metaflow=={VERSION} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(HOME)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"metaflow=={VERSION}"], check=True)
    return str(python)


def find(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("METAFLOW_PYTHON"), str(HOME / "bin" / "python")):
        if candidate and Path(candidate).exists():
            check = subprocess.run([candidate, "-c", "import metaflow"], capture_output=True, timeout=120)
            if check.returncode == 0:
                return candidate
    return None


def measure(python: str, n: int, workers: int, home: Path) -> dict:
    flow = home / "bench_flow.py"
    flow.write_text(FLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOW_") and k != "PYTHONPATH"}
    env.update(USERNAME="bench", METAFLOW_DATASTORE_SYSROOT_LOCAL=str(home / "mf"))
    cmd = [
        python, str(flow), "--no-pylint", "run", "--n", str(n), "--max-workers", str(workers),
        "--max-num-splits", "20000",
    ]  # fmt: skip
    log = home / f"metaflow-{n}.log"
    load_before = procs.load()
    busy_before = procs.machine_busy()
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        stop_group(proc, grace=5)
        raise
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    others = max(0.0, procs.machine_busy() - busy_before - cpu) / wall
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"Metaflow run failed ({proc.returncode}):\n{text[-4000:]}")
    expected = f"TOTAL {sum(2 * i for i in range(n))} COUNT {n}"
    tasks = n + 3  # start, n branches, join, end
    return {
        "n": n,
        "tasks": tasks,
        "wall_s": wall,
        "tasks_per_s": tasks / wall,
        "s_per_task": wall / tasks,
        "cpu_s": {"metaflow": cpu},
        "cpu_ms_per_task": 1000 * cpu / tasks,
        "others_cores": others,
        "verified": expected in text,
        "check": f"end step printed '{expected}'" if expected in text else "end step's total NOT found",
        "load": [load_before, procs.load()],
    }
