"""The pipeline engine vs raw Celery and Metaflow: one run, same machine, same Redis, same worker count.

    .venv/bin/python benchmarks/bench_engine.py --setup-metaflow      # first time: Metaflow's venv
    .venv/bin/python benchmarks/bench_engine.py [--quick] [--engine sqlite|postgres] [--workers 2]
        [--sizes 1000,20000] [--branches 200] [--repeat 1] [--metaflow-python PATH] [--json OUT]

Three sides, one after the other (never at the same time), on one private redis-server:

(a) Cellar: the Procfile's processes (gunicorn web, the control Celery worker with --beat,
    `cellar-worker --pool cpu` with W threads, so W executor processes) on a private database;
    a notebook (n -> make -> foreach work: x = 2 * item -> join -> end) compiled by the SDK and
    promoted with `cellar promote`; each run started with POST runs/ and timed from just before
    the POST to the run's recorded end; then every task record and output is checked
    (engine/cellar_db.py verify). The team's quota is raised so that it is not what is measured.
(b) raw Celery: a `celery worker -P prefork -c W`, one `apply_async` per no-op task, acks_late,
    no result backend, timed from the first send until all N have run (engine/raw_celery.py).
(c) Metaflow 2.19.39's local runtime, its own venv: start -> foreach of B branches -> join -> end,
    `--max-workers W` (engine/metaflow_side.py).

Both (a) and (b) are started, then warmed up (a small run each: processes and executors up,
imports done), then measured alternately per N (raw, Cellar, raw, Cellar, …) so that a change in
what else runs on the machine hits both. Each figure comes with the CPU it used (every process
of that side, the Redis server and this driver), which holds under contention when wall time
does not, and with the CPU other processes used meanwhile ("others", in cores).

Per-task throughput = task records / wall time (Cellar: N + 4 with the expand task; Metaflow:
B + 3; raw Celery: N). The Cellar / raw Celery ratio compares the N elements per second (Cellar
pays its 4 extra tasks). Peak RSS is the kernel's VmHWM of every control-worker process (its
main process, the beat process, the pool child) read after the largest run.

Profiling aids: --keep leaves the temporary folder (every process's log, the SQLite database,
the artifact store); ENGINE_BENCH_PYTHONPATH=DIR puts a patched copy of cellar_server /
cellar_worker / cellar ahead of the installed one in every Cellar process, to measure a change
to the engine before committing it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

from engine import cellar_side, metaflow_side, procs
from engine.raw_celery import RawCelery
from tracking.servers import Cleanup, make_tmp, stop_group

RATIO_RAW, RATIO_METAFLOW, RSS_MB = 1.0, 100.0, 500.0


def machine() -> str:
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    memory = f"{mem_kb / 1024**2:.0f} GiB RAM"
    return f"{os.cpu_count()} CPUs, {memory}, {platform.platform()}, Python {platform.python_version()}"


def say(text: str) -> None:
    print(text, flush=True)


def row(side: str, r: dict) -> str:
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_s"].items())
    return (
        f"| {side} | {r['n']:,} | {r['tasks']:,} | {r['wall_s']:.2f} | {r['tasks_per_s']:,.0f} | "
        f"{r['cpu_ms_per_task']:.2f} | {cpu} | {r['others_cores']:.2f} | {'ok' if r['verified'] else 'FAILED'} |"
    )


def timeline(r: dict) -> str:
    t = r["timeline"]
    steps = t["per_step"]

    def span(name: str) -> str:
        s = steps.get(name) or {}
        if s.get("started") is None:
            return f"{name} ?"
        return f"{name} {s['dispatched']:.2f}->{s['started']:.2f}->{s['ended']:.2f}"

    d, e = t["work_dispatched_first_last_s"], t["work_ended_first_last_s"]
    return (
        f"    timeline (s after the run row was created; POST took {r['post_s']:.2f}s): "
        f"{span('make')}; {span('expand')}; work created {t['work_created_first_last_s'][0]:.2f}, "
        f"dispatched {d[0]:.2f}..{d[1]:.2f}, ended {e[0]:.2f}..{e[1]:.2f}; {span('join')}; "
        f"run ended {t['run_created_to_ended_s']:.2f}\n"
        f"    work task dispatched->started p50 {t['dispatch_to_start_s'].get('p50', 0):.2f}s, "
        f"started->ended p50 {1000 * t['start_to_end_s'].get('p50', 0):.1f} ms "
        f"(p99 {1000 * t['start_to_end_s'].get('p99', 0):.1f} ms)"
    )


def rss_line(peak: dict) -> tuple[str, float]:
    parts, worst = [], 0.0
    for name, processes in peak.items():
        hwm = [p["hwm_mb"] for p in processes.values()]
        worst = max(worst, *hwm) if name == "control" and hwm else worst
        parts.append(f"{name} " + "/".join(f"{v:.0f}" for v in hwm))
    return "peak RSS (VmHWM, MB per process): " + "; ".join(parts), worst


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 200 and 1,000, 50 Metaflow branches")
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="worker processes on every side (default 2)")
    parser.add_argument("--sizes", help="comma-separated N (default 1000,20000)")
    parser.add_argument("--branches", type=int, help="Metaflow foreach branches (default 200)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each N this many times per side")
    parser.add_argument("--metaflow-python", help="a Python with metaflow installed (default: $METAFLOW_PYTHON)")
    parser.add_argument("--setup-metaflow", action="store_true", help=f"create {metaflow_side.HOME}")
    parser.add_argument("--skip-metaflow", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) for a look")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("200,1000" if args.quick else "1000,20000")).split(",")]
    branches = args.branches or (50 if args.quick else 200)
    metaflow_python = None
    if not args.skip_metaflow:
        metaflow_python = metaflow_side.setup() if args.setup_metaflow else metaflow_side.find(args.metaflow_python)
        if metaflow_python is None:
            say("metaflow not found: run with --setup-metaflow (or --metaflow-python); skipping side (c)")

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    cleanup = Cleanup()
    report: dict = {"machine": machine(), "engine": args.engine, "workers": args.workers, "sizes": sizes,
                    "raw": [], "cellar": [], "metaflow": None}  # fmt: skip
    try:
        if args.keep:
            home = Path(tempfile.mkdtemp(prefix="engine-bench-"))
            say(f"keeping {home} (logs of every process)")
        else:
            home = make_tmp(cleanup, "engine-bench-")
        say(f"engine bench: {machine()}; {args.engine}; {args.workers} worker processes per side; {procs.load()}")
        redis_url, redis_proc = procs.start_redis(cleanup, home)
        shared = {"redis": redis_proc.pid}

        raw = RawCelery(cleanup, redis_url, args.workers, home)
        say(f"raw Celery worker up; warm-up of 200 tasks in {raw.warm_up():.1f}s")
        stack = cellar_side.CellarStack(cleanup, home, redis_url, args.workers, args.engine)
        stack.extra_trees.update(shared)
        started = time.monotonic()
        stack.prepare()
        up = stack.start()
        say(
            f"Cellar up in {time.monotonic() - started:.1f}s (migrate + bootstrap + quota "
            f"{cellar_side.QUOTA:,}, then web {up['web']:.1f}s, control {up['control']:.1f}s, agent {up['agent']:.1f}s)"
        )
        say(f"promoted version {stack.promote()[:12]} with `cellar promote`")
        warm = stack.run(50, timeout=300)
        say(f"Cellar warm-up run of 50 elements: {warm['wall_s']:.1f}s ({'ok' if warm['verified'] else warm['check']})")

        for n in sizes:
            for _ in range(args.repeat):
                say(f"--- N = {n:,}: raw Celery ({procs.load()})")
                r = raw.measure(n, shared)
                report["raw"].append(r)
                say(row("raw Celery", r))
                say(f"--- N = {n:,}: Cellar ({procs.load()})")
                c = stack.run(n, timeout=600 + n / 5)
                report["cellar"].append(c)
                say(row("Cellar", c))
                say(timeline(c))
                if not c["verified"]:
                    say(f"    CHECK FAILED: {c['check']}")
        rss_text, control_peak = rss_line(report["cellar"][-1]["peak_rss_mb"])
        report["control_peak_rss_mb"] = control_peak
        say(rss_text)
        for proc in (stack.agent, stack.control, stack.web, raw.proc):
            stop_group(proc, grace=20)

        if metaflow_python:
            say(f"--- Metaflow {metaflow_side.VERSION}, {branches} branches ({procs.load()})")
            report["metaflow"] = metaflow_side.measure(metaflow_python, branches, args.workers, home)
            say(row("Metaflow", report["metaflow"]))
    finally:
        cleanup.run()

    say("\n" + summary(report, args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    ok = all(r["verified"] for r in report["raw"] + report["cellar"])
    return 0 if ok and (report["metaflow"] is None or report["metaflow"]["verified"]) else 1


def best(rows: list[dict], n: int) -> dict:
    return max((r for r in rows if r["n"] == n), key=lambda r: r["tasks_per_s"])


def summary(report: dict, args) -> str:
    lines = [
        f"Engine: {report['machine']}; database {report['engine']}; {report['workers']} worker processes per side",
        "| side | N | tasks | wall s | tasks/s | CPU ms/task | CPU s by process tree | others (cores) | check |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for n in report["sizes"]:
        for side in ("raw", "cellar"):
            for r in (r for r in report[side] if r["n"] == n):
                lines.append(row("raw Celery" if side == "raw" else "Cellar", r))
    mf = report["metaflow"]
    if mf:
        lines.append(row(f"Metaflow {metaflow_side.VERSION}", mf))
    lines.append("")
    for n in report["sizes"]:
        c, r = best(report["cellar"], n), best(report["raw"], n)
        ratio = (n / c["wall_s"]) / (n / r["wall_s"])
        cpu_ratio = (r["cpu_ms_per_task"] * r["tasks"] / n) / (c["cpu_ms_per_task"] * c["tasks"] / n)
        lines.append(
            f"N = {n:,}: Cellar / raw Celery = {ratio:.2f}x elements/s ({n / c['wall_s']:,.0f} vs "
            f"{n / r['wall_s']:,.0f}; target >= {RATIO_RAW:.1f}: {'met' if ratio >= RATIO_RAW else 'MISSED'}); "
            f"by CPU per element {cpu_ratio:.2f}x"
        )
        if mf:
            x = c["tasks_per_s"] / mf["tasks_per_s"]
            lines.append(
                f"N = {n:,}: Cellar / Metaflow per-task throughput = {x:,.0f}x ({c['tasks_per_s']:,.0f} vs "
                f"{mf['tasks_per_s']:.2f} tasks/s; target >= {RATIO_METAFLOW:.0f}: "
                f"{'met' if x >= RATIO_METAFLOW else 'MISSED'}); by CPU per task "
                f"{mf['cpu_ms_per_task'] / c['cpu_ms_per_task']:,.0f}x"
            )
    peak = report.get("control_peak_rss_mb")
    if peak is not None:
        lines.append(
            f"control worker peak RSS after N = {max(report['sizes']):,}: {peak:.0f} MB (largest of its processes; "
            f"target < {RSS_MB:.0f}: {'met' if peak < RSS_MB else 'MISSED'})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
