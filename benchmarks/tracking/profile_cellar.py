"""Where Cellar's time goes on the benchmark's requests: SQL per request and a cProfile.

    .venv/bin/python benchmarks/tracking/profile_cellar.py [--engine sqlite|postgres] [--quick]
        [--only log_metric,log_batch,search,history] [--top 25] [--explain]

Builds a fresh Cellar database like bench_tracking.py (migrate, cellar_bootstrap, the same
populated runs and history), then, in-process through django.test.Client exactly as inproc.py
sends them, for each request: the SQL it runs (django.test.utils.CaptureQueriesContext, with
each statement's time) and a cProfile of a few repetitions, sorted by cumulative and own time.
Nothing is started on the network; the temporary database is removed on exit.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inproc  # noqa: E402
import populate  # noqa: E402
import servers  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="1,000 runs and 10,000 points instead of 10,000/100,000")
    parser.add_argument("--only", default="log_metric,log_batch,search,history")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--explain", action="store_true", help="print the plan of each request's slowest SELECT")
    parser.add_argument("--keep", action="store_true", help="keep the populated database and print its URL")
    args = parser.parse_args(argv)
    n_runs, n_points = (1_000, 10_000) if args.quick else (10_000, 100_000)
    cleanup = servers.Cleanup()
    try:
        _, env, token = servers.prepare_cellar(cleanup, args.engine)
        os.environ.update(env)
        new = inproc.cellar_caller(servers.TEAM, token)
        call = new()
        exps = {
            n: inproc.call_json(call, "POST", "experiments/create", {"name": f"bench-{n}"})["experiment_id"]
            for n in ("s", "h", "l")
        }
        history_run = inproc.create_run(call, exps["h"], "history")
        populate.populate_cellar(
            env["DATABASE_URL"],
            team=servers.TEAM,
            experiment_id=exps["s"],
            bench_runs=populate.runs(n_runs),
            history_run=history_run,
            history_points=n_points,
        )
        run_id = inproc.create_run(call, exps["l"], "profile")
        now = int(time.time() * 1000)
        counter = iter(range(10**9))
        search = {
            "experiment_ids": [exps["s"]],
            "filter": "metrics.m0 > 0.5 and params.p1 = 'v3'",
            "run_view_type": "ACTIVE_ONLY",
            "max_results": 100,
            "order_by": ["metrics.m1 DESC"],
        }

        def log_metric():
            i = next(counter)
            call("POST", "runs/log-metric", {"run_id": run_id, "key": "loss", "value": i, "timestamp": now, "step": i})

        def log_batch():
            call("POST", "runs/log-batch", inproc.batch_of(run_id, next(counter), now))

        def history_page():
            call("GET", "metrics/get-history", {"run_id": history_run, "metric_key": "loss", "max_results": 25000})

        ops = {
            "log_metric": (log_metric, 50),
            "log_batch": (log_batch, 10),
            "search": (lambda: call("POST", "runs/search", search), 10),
            "history": (history_page, 3),
            "history_all_pages": (lambda: inproc.full_history(call, history_run, "loss"), 2),
        }
        wanted = set(args.only.split(","))
        for name, (op, reps) in ops.items():
            if name not in wanted and name.removesuffix("_all_pages") not in wanted:
                continue
            report(name, op, reps, args.top, args.explain)
        if args.keep:
            print(f"kept: DATABASE_URL={env['DATABASE_URL']}", file=sys.stderr)
    finally:
        if not args.keep:
            cleanup.run()
    return 0


def report(name: str, op, reps: int, top: int, explain: bool) -> None:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    op()  # warm-up
    reset_queries()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as ctx:
        op()
    wall = (time.perf_counter() - started) * 1000
    sql_ms = sum(float(q["time"]) for q in ctx.captured_queries) * 1000
    print(f"\n===== {name}: {len(ctx.captured_queries)} queries, {sql_ms:.1f} ms in SQL of {wall:.1f} ms wall")
    for q in ctx.captured_queries:
        print(f"  {float(q['time']) * 1000:7.2f} ms  {q['sql'][:300]}")
    selects = [q for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    if explain and selects:
        slowest = max(selects, key=lambda q: float(q["time"]))
        prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
        print(f"--- plan of the slowest SELECT:\n{slowest['sql']}")
        with connection.cursor() as cursor:
            # Captured SQL has its parameters inlined (for reading); fine for these int/str values.
            cursor.execute(prefix + slowest["sql"])
            for row in cursor.fetchall():
                print("   ", " ".join(str(c) for c in row))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(reps):
        op()
    profiler.disable()
    print(f"--- cProfile, {reps} requests, {(time.perf_counter() - started) / reps * 1000:.1f} ms each (profiled)")
    timed = []
    for _ in range(max(reps * 3, 20)):
        started = time.perf_counter()
        op()
        timed.append((time.perf_counter() - started) * 1000)
    timed.sort()
    print(f"--- timed without the profiler: {len(timed)} requests, median {timed[len(timed) // 2]:.2f} ms")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        text = out.getvalue()
        print(text[text.index("ncalls") :] if "ncalls" in text else text)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
