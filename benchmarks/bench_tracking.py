"""Tracking vs MLflow: Cellar's MLflow-compatible API beside `mlflow server` 3.17.2, same machine.

    .venv/bin/python benchmarks/bench_tracking.py [--quick] [--engine sqlite|postgres|both]
        [--rounds N] [--json OUT]

For each database engine (SQLite, then PostgreSQL), with default durability settings on both
sides, it starts each server as production does (Cellar: gunicorn, 2 workers x 4 threads;
MLflow: `mlflow server --workers 2`, uvicorn) and measures:

1. sequential `client.log_metric` calls/s and p50 latency;
2. `log_batch` of 1000 metrics: metrics/s with 1 client and with 8 concurrent clients;
3. `search_runs` over N runs (5 params, 5 metrics, 3 tags each) with a metric and a param
   filter, ordered by a metric, max 100 results: p50 and p95;
4. `get_metric_history` of one metric with M points: p50.

Two views of each figure:
* end to end: tracking/client_script.py, the unmodified MLflow client in .venv-mlflow, run
  against each server's URI;
* server time alone: tracking/inproc.py sends the same requests in-process (Flask test client for
  MLflow, django.test.Client for Cellar), after the server processes are stopped, on the same data.
And, once per invocation, the client alone (tracking/client_floor.py): the same client calls
answered instantly with canned responses, which bounds the end-to-end ratio any server can reach.

Both servers are set up first; then each view runs in rounds that alternate the two sides
(Cellar then MLflow, MLflow then Cellar, ...), one side at a time, so that both meet the same
machine: on a shared box the load of other work moves every figure, and measuring one side
minutes after the other turned that into noise in the ratios. Each figure is the median over
the rounds; the table also shows the lowest and highest per-round ratio.

The N runs and the M-point history are written straight into each database (tracking/populate.py):
identical on both sides, and not part of any measurement. Every server, temporary folder and
bench database is removed on exit, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tracking import populate, servers

HERE = Path(__file__).resolve().parent
MLFLOW_PY = str(servers.MLFLOW_BIN / "python")
CELLAR_PY = str(servers.CELLAR_BIN / "python")

SIZES = {
    "full": {
        "runs": 10_000,
        "history_points": 100_000,
        "log_metric_calls": 300,
        "batches_1": 30,
        "clients": 8,
        "batches_n": 10,
        "queries": 20,
        "history_calls": 5,
    },
    "quick": {
        "runs": 1_000,
        "history_points": 10_000,
        "log_metric_calls": 60,
        "batches_1": 10,
        "clients": 8,
        "batches_n": 4,
        "queries": 8,
        "history_calls": 3,
    },
}
SEARCH = {"filter": "metrics.m0 > 0.5 and params.p1 = 'v3'", "order_by": ["metrics.m1 DESC"], "max_results": 100}
TARGET = 10.0

# (label, step, field, higher is better, has a target, client-floor key, ms per call from the figure)
ROWS = [
    ("log_metric, sequential: calls/s", "log_metric", "calls_per_s", True, True, "log_metric_ms", lambda v: 1000 / v),
    ("log_metric, sequential: p50 ms", "log_metric", "p50_ms", False, False, "log_metric_ms", lambda v: v),
    ("log_batch 1000, 1 client: metrics/s", "batch1", "metrics_per_s", True, True, "log_batch_ms", lambda v: 1e6 / v),
    ("log_batch 1000, 8 clients: metrics/s", "batch8", "metrics_per_s", True, True, None, None),
    ("search_runs: p50 ms", "search", "p50_ms", False, True, "search_ms", lambda v: v),
    ("search_runs: p95 ms", "search", "p95_ms", False, False, "search_ms", lambda v: v),
    ("get_metric_history: p50 ms", "history", "p50_ms", False, True, "history_ms", lambda v: v),
]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def machine() -> str:
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} CPUs, {mem_kb / 1024**2:.0f} GiB RAM, {platform.platform()}"


def run_script(cmd: list[str], env: dict[str, str], log: Path) -> None:
    """Run a helper in its own process group, so that it and whatever it spawned (the 8 log_batch
    clients) die with it when the benchmark is interrupted."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=HERE, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        code = proc.wait(timeout=3600)
    finally:
        servers.stop_group(proc, grace=5)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} exited {code}; stderr tail:\n{log.read_text()[-4000:]}")


def client_env(server: servers.Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"}
    env.update(MLFLOW_TRACKING_URI=server.url, MLFLOW_DISABLE_TELEMETRY="true")
    if server.token:
        env["MLFLOW_TRACKING_TOKEN"] = server.token
    return env


@dataclass
class Side:
    label: str
    server: servers.Server
    config_file: Path
    log: Path


def setup_side(side: str, engine: str, sizes: dict, cleanup: servers.Cleanup, scratch: Path) -> Side:
    """Start the side's server, create its experiments through the API, populate its database."""
    label = "Cellar" if side == "cellar" else "MLflow"
    print(f"--- {label} on {engine}: starting", flush=True)
    server = servers.start_cellar(cleanup, engine) if side == "cellar" else servers.start_mlflow(cleanup, engine)
    print(f"    up in {server.start_seconds:.1f}s at {server.url}", flush=True)
    log = scratch / f"{side}-{engine}.stderr"
    ids_file = scratch / f"{side}-{engine}-ids.json"
    run_script([MLFLOW_PY, "tracking/client_script.py", "setup", str(ids_file)], client_env(server), log)
    ids = json.loads(ids_file.read_text())

    started = time.perf_counter()
    common = {
        "experiment_id": ids["experiments"]["search"],
        "bench_runs": populate.runs(sizes["runs"]),
        "history_run": ids["history_run"],
        "history_points": sizes["history_points"],
    }
    if side == "cellar":
        populate.populate_cellar(server.db_url, team=servers.TEAM, **common)
    else:
        populate.populate_mlflow(server.db_url, **common)
    print(
        f"    populated {sizes['runs']:,} runs and a {sizes['history_points']:,}-point history "
        f"in {time.perf_counter() - started:.1f}s (set-up, not measured)",
        flush=True,
    )
    config = {
        **{k: sizes[k] for k in ("log_metric_calls", "batches_1", "clients", "batches_n", "history_calls")},
        "experiments": ids["experiments"],
        "history_run": ids["history_run"],
        "history_key": populate.HISTORY_KEY,
        "search": {**SEARCH, "queries": sizes["queries"]},
        "team": servers.TEAM,
        "token": server.token,
    }
    config_file = scratch / f"{side}-{engine}-config.json"
    config_file.write_text(json.dumps(config))
    return Side(label, server, config_file, log)


def measure_e2e(side: Side, out: Path) -> dict:
    print(f"    {side.label}, end to end ({load()})", flush=True)
    run_script(
        [MLFLOW_PY, "tracking/client_script.py", "measure", str(side.config_file), str(out)],
        client_env(side.server),
        side.log,
    )
    return json.loads(out.read_text())


def measure_inproc(side_name: str, side: Side, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(side.server.env)
    print(f"    {side.label}, server time alone, in-process ({load()})", flush=True)
    python = MLFLOW_PY if side_name == "mlflow" else CELLAR_PY
    run_script([python, "tracking/inproc.py", side_name, str(side.config_file), str(out)], env, side.log)
    return json.loads(out.read_text())


def bench_engine(engine: str, sizes: dict, rounds: int, cleanup: servers.Cleanup, scratch: Path) -> dict:
    """Both sides set up, then `rounds` alternating rounds of each view. Returns per-side medians
    and, per view, the list of per-round results of each side."""
    sides = {name: setup_side(name, engine, sizes, cleanup, scratch) for name in ("cellar", "mlflow")}
    per_round: dict = {view: {name: [] for name in sides} for view in ("e2e", "inproc")}
    for view in ("e2e", "inproc"):
        if view == "inproc":
            for side in sides.values():  # in-process runs on the same databases, with no server running
                side.server.stop()
        for r in range(rounds):
            order = ("cellar", "mlflow") if r % 2 == 0 else ("mlflow", "cellar")
            what = "end to end" if view == "e2e" else "server alone"
            print(f"--- {engine}, {what}, round {r + 1}/{rounds}", flush=True)
            for name in order:
                out = scratch / f"{name}-{engine}-{view}-{r}.json"
                result = measure_e2e(sides[name], out) if view == "e2e" else measure_inproc(name, sides[name], out)
                per_round[view][name].append(result)
    medians = {name: {view: _median_results(per_round[view][name]) for view in per_round} for name in sides}
    return {"cellar": medians["cellar"], "mlflow": medians["mlflow"], "rounds": per_round}


def _median_results(results: list[dict]) -> dict:
    """Field by field median of several rounds' results (non-numeric fields from the last round)."""
    merged: dict = {}
    for step in results[-1]:
        fields = {}
        for field, value in results[-1][step].items():
            if isinstance(value, int | float) and not isinstance(value, bool) and field not in ("results", "points"):
                fields[field] = statistics.median(r[step][field] for r in results)
            else:
                fields[field] = value
        merged[step] = fields
    return merged


def client_floor(sizes: dict, scratch: Path) -> dict:
    """The unmodified client's own time per call, with instant canned answers (tracking/client_floor.py)."""
    config = scratch / "floor-config.json"
    # The canned search answer has as many runs as the real one: the populated runs that match.
    matching = sum(1 for r in populate.runs(sizes["runs"]) if r.metrics["m0"] > 0.5 and r.params["p1"] == "v3")
    search = {**SEARCH, "queries": sizes["queries"], "results": min(matching, SEARCH["max_results"])}
    config.write_text(json.dumps({**sizes, "search": search}))
    out = scratch / "floor.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    print(f"--- the MLflow client alone, canned answers ({load()})", flush=True)
    run_script([MLFLOW_PY, "tracking/client_floor.py", str(config), str(out)], env, scratch / "floor.stderr")
    return json.loads(out.read_text())


def advantage(cellar: float, mlflow: float, higher_is_better: bool) -> float:
    """How many times better Cellar is: Cellar/MLflow for rates, MLflow/Cellar for latencies."""
    if not cellar or not mlflow:
        return float("nan")
    return cellar / mlflow if higher_is_better else mlflow / cellar


def fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(engine: str, mode: str, sizes: dict, results: dict, floor: dict, loads: list[str]) -> str:
    rounds = len(results["rounds"]["e2e"]["cellar"])
    header = (
        f"Tracking vs MLflow 3.17.2: {engine}, {mode} run ({sizes['runs']:,} runs, "
        f"{sizes['history_points']:,}-point history), {rounds} alternating round(s); {machine()}\n"
        f"{'; '.join(loads)}\n"
        "x = how many times better Cellar is (rates: Cellar/MLflow; latencies: MLflow/Cellar), from the "
        "medians over the rounds, with the lowest-highest per-round x in brackets; "
        f"target >= {TARGET:.0f}x on the starred rows, '!' = below it.\n"
        "max x = MLflow's end-to-end time / the client's own time with instant canned answers: the best "
        "end-to-end x any server could reach with the unmodified client on this machine.\n"
    )
    lines = [
        "| measure | Cellar, end to end | MLflow, end to end | x | max x | Cellar, server alone "
        "| MLflow, server alone | x |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, step, field, higher, targeted, floor_key, per_call_ms in ROWS:
        cells = []
        for view in ("e2e", "inproc"):
            c, m = results["cellar"][view][step][field], results["mlflow"][view][step][field]
            x = advantage(c, m, higher)
            pairs = zip(results["rounds"][view]["cellar"], results["rounds"][view]["mlflow"], strict=True)
            xs = [advantage(rc[step][field], rm[step][field], higher) for rc, rm in pairs]
            spread = f" [{min(xs):.1f}-{max(xs):.1f}]" if len(xs) > 1 else ""
            cells += [fmt(c), fmt(m), f"{x:.1f}" + (" !" if targeted and not x >= TARGET else "") + spread]
            if view == "e2e":
                cells.append(f"{per_call_ms(m) / floor[floor_key]:.0f}" if floor_key else "-")
        lines.append(f"| {'*' if targeted else ''}{label} | " + " | ".join(cells) + " |")
    checks = []
    for view in ("e2e", "inproc"):
        c, m = results["cellar"][view], results["mlflow"][view]
        same = c["search"]["digest"] == m["search"]["digest"] and c["search"]["results"] == m["search"]["results"]
        checks.append(
            f"{view}: search returned {c['search']['results']} / {m['search']['results']} runs, "
            f"{'the same runs in the same order' if same else 'DIFFERENT runs'}; history "
            f"{c['history']['points']:,} / {m['history']['points']:,} points"
        )
    checks.append(
        f"client alone (canned answers): log_metric {floor['log_metric_ms']:.2f} ms, log_batch of 1000 "
        f"{floor['log_batch_ms']:.1f} ms, search_runs {floor['search_ms']:.1f} ms, get_metric_history "
        f"{floor['history_ms']:,.0f} ms"
    )
    return header + "\n".join(lines) + "\n" + "\n".join(checks)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 10,000 points, fewer repetitions")
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of each view per side (figures are their medians)"
    )
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    cleanup = servers.Cleanup()
    report: dict = {"mode": mode, "sizes": sizes, "machine": machine(), "engines": {}}
    tables = []
    try:
        scratch = servers.make_tmp(cleanup, "tracking-bench-")
        floor = client_floor(sizes, scratch)
        report["client_floor"] = floor
        for engine in engines:
            loads = [f"before: {load()}"]
            results = bench_engine(engine, sizes, max(1, args.rounds), cleanup, scratch)
            loads.append(f"after: {load()}")
            text = table(engine, mode, sizes, results, floor, loads)
            tables.append(text)
            print("\n" + text + "\n", flush=True)
            report["engines"][engine] = {"results": results, "load": loads}
            cleanup.run()  # servers and databases of this engine; a fresh scratch for the next
            scratch = servers.make_tmp(cleanup, "tracking-bench-")
    finally:
        cleanup.run()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if len(tables) > 1:
        print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
