"""End to end, as the unmodified MLflow client sees it. Runs in .venv-mlflow, once per server.

    MLFLOW_TRACKING_URI=… [MLFLOW_TRACKING_TOKEN=…] python client_script.py setup OUT.json
    MLFLOW_TRACKING_URI=… [MLFLOW_TRACKING_TOKEN=…] python client_script.py measure CONFIG.json OUT.json

`setup` creates the experiments and the history run through the API (population then fills
them with SQL); `measure` times MlflowClient calls. Only the standard library and mlflow.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import statistics
import sys
import time

from mlflow import MlflowClient
from mlflow.entities import Metric

BATCH = 1000


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def batch_of(index: int, timestamp: int) -> list[Metric]:
    return [Metric(f"k{j % 10}", float(j), timestamp, index * BATCH + j) for j in range(BATCH)]


def setup(out: str) -> None:
    client = MlflowClient()
    ids = {name: client.create_experiment(f"bench-{name}") for name in ("search", "history", "logging")}
    run = client.create_run(ids["history"], run_name="history")
    with open(out, "w") as f:
        json.dump({"experiments": ids, "history_run": run.info.run_id}, f)


def log_metric(client: MlflowClient, experiment: str, calls: int) -> dict:
    run_id = client.create_run(experiment, run_name="log-metric").info.run_id
    for i in range(5):  # warm-up: connection, first-request costs
        client.log_metric(run_id, "warm", i, step=i)
    latencies = []
    started = time.perf_counter()
    for i in range(calls):
        t = time.perf_counter()
        client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return {"calls_per_s": calls / total, "p50_ms": statistics.median(latencies) * 1000}


def log_batch(client: MlflowClient, experiment: str, batches: int) -> dict:
    run_id = client.create_run(experiment, run_name="log-batch").info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=batch_of(batches, now))  # warm-up
    prepared = [batch_of(i, now) for i in range(batches)]
    latencies = []
    started = time.perf_counter()
    for metrics in prepared:
        t = time.perf_counter()
        client.log_batch(run_id, metrics=metrics)
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return {"metrics_per_s": batches * BATCH / total, "p50_ms": statistics.median(latencies) * 1000}


def _batch_worker(experiment: str, batches: int, n: int, barrier, results) -> None:
    client = MlflowClient()
    run_id = client.create_run(experiment, run_name=f"log-batch-{n}").info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=batch_of(batches, now)[:10])  # warm-up
    prepared = [batch_of(i, now) for i in range(batches)]
    barrier.wait()
    started = time.monotonic()
    for metrics in prepared:
        client.log_batch(run_id, metrics=metrics)
    results.put((started, time.monotonic()))


def log_batch_concurrent(experiment: str, clients: int, batches: int) -> dict:
    """`clients` processes, each with its own MlflowClient and run, released together."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(clients), ctx.Queue()
    procs = [ctx.Process(target=_batch_worker, args=(experiment, batches, n, barrier, results)) for n in range(clients)]
    for p in procs:
        p.start()
    spans = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a log_batch client exited with {p.exitcode}")
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return {"metrics_per_s": clients * batches * BATCH / wall, "clients": clients}


def search(client: MlflowClient, experiment: str, cfg: dict) -> dict:
    def once():
        return client.search_runs(
            [experiment], filter_string=cfg["filter"], order_by=cfg["order_by"], max_results=cfg["max_results"]
        )

    for _ in range(2):
        found = once()
    latencies = []
    for _ in range(cfg["queries"]):
        t = time.perf_counter()
        once()
        latencies.append(time.perf_counter() - t)
    ids = [r.info.run_id for r in found]
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": pct(latencies, 95) * 1000,
        "results": len(ids),
        "digest": hashlib.sha256(",".join(ids).encode()).hexdigest()[:16],
    }


def history(client: MlflowClient, run_id: str, key: str, calls: int) -> dict:
    points = len(client.get_metric_history(run_id, key))  # warm-up
    latencies = []
    for _ in range(calls):
        t = time.perf_counter()
        got = client.get_metric_history(run_id, key)
        latencies.append(time.perf_counter() - t)
        points = len(got)
    return {"p50_ms": statistics.median(latencies) * 1000, "points": points}


def measure(config_path: str, out: str) -> None:
    with open(config_path) as f:
        cfg = json.load(f)
    client = MlflowClient()
    exps = cfg["experiments"]
    results = {}
    steps = [
        ("log_metric", lambda: log_metric(client, exps["logging"], cfg["log_metric_calls"])),
        ("batch1", lambda: log_batch(client, exps["logging"], cfg["batches_1"])),
        ("batch8", lambda: log_batch_concurrent(exps["logging"], cfg["clients"], cfg["batches_n"])),
        ("search", lambda: search(client, exps["search"], cfg["search"])),
        ("history", lambda: history(client, cfg["history_run"], cfg["history_key"], cfg["history_calls"])),
    ]
    for name, step in steps:
        started = time.perf_counter()
        results[name] = step()
        print(f"  client {name}: {results[name]} ({time.perf_counter() - started:.1f}s)", flush=True)
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2])
    else:
        measure(sys.argv[2], sys.argv[3])
