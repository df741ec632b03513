"""Server time alone: the client script's requests, sent in-process, without the network.

    MLflow: .venv-mlflow/bin/python inproc.py mlflow CONFIG.json OUT.json   (Flask test client)
    Cellar: .venv/bin/python        inproc.py cellar CONFIG.json OUT.json   (django.test.Client)

The environment carries each server's configuration exactly as its real server gets it:
`mlflow server` hands its workers _MLFLOW_SERVER_FILE_STORE and friends (see servers.py),
Cellar reads DATABASE_URL & co. Each figure is the wall time of the framework's full request
path (routing, auth, parsing, the database, JSON encoding) with no socket, no HTTP parser and
no client library. The requests are the ones the MLflow client sends: log-metric, log-batch of
1000 metrics, runs/search with the filter, and metrics/get-history in pages of 25,000 as
`MlflowClient.get_metric_history` pages it. Only the standard library and the side's framework.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

BATCH = 1000
HISTORY_PAGE = 25000  # mlflow.store.tracking.GET_METRIC_HISTORY_MAX_RESULTS


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# (method, endpoint under api/2.0/mlflow/, fields) -> (seconds the framework took, response body).
# Only the request is timed: encoding the request body and decoding the answer are the client's
# work, and Cellar's end-of-request connection clean-up runs after the response, as in a real worker.
Call = Callable[[str, str, dict], tuple[float, bytes]]


def mlflow_caller() -> Callable[[], Call]:
    from mlflow.server import app  # configured by the environment, as `mlflow server` configures its workers

    def new() -> Call:
        client = app.test_client()

        def call(method: str, endpoint: str, fields: dict) -> tuple[float, bytes]:
            path = f"/api/2.0/mlflow/{endpoint}"
            payload = None if method == "GET" else json.dumps(fields)  # the client's work: not timed
            started = time.perf_counter()
            if method == "GET":
                response = client.get(path, query_string=fields)
            else:
                response = client.post(path, data=payload, content_type="application/json")
            body = response.get_data()
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"{method} {endpoint}: {response.status_code} {body[:500]!r}")
            return elapsed, body

        return call

    return new


def cellar_caller(team: str, token: str) -> Callable[[], Call]:
    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "platform"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cellar_server.settings")
    import django

    django.setup()
    from django.db import close_old_connections
    from django.test import Client

    def new() -> Call:
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

        def call(method: str, endpoint: str, fields: dict) -> tuple[float, bytes]:
            path = f"/t/{team}/mlflow/api/2.0/mlflow/{endpoint}"
            payload = None if method == "GET" else json.dumps(fields)  # the client's work: not timed
            started = time.perf_counter()
            try:
                if method == "GET":
                    response = client.get(path, fields)
                else:
                    response = client.post(path, payload, content_type="application/json")
                body = response.content
                elapsed = time.perf_counter() - started
            finally:
                # The test client skips request_finished's close_old_connections; a real worker does
                # not (and on SQLite, CONN_MAX_AGE=0 closes the connection after every request).
                close_old_connections()
            if response.status_code != 200:
                raise RuntimeError(f"{method} {endpoint}: {response.status_code} {body[:500]!r}")
            return elapsed, body

        return call

    return new


def call_json(call: Call, method: str, endpoint: str, fields: dict) -> dict:
    return json.loads(call(method, endpoint, fields)[1])


def create_run(call: Call, experiment: str, name: str) -> str:
    fields = {"experiment_id": experiment, "run_name": name, "start_time": int(time.time() * 1000)}
    return call_json(call, "POST", "runs/create", fields)["run"]["info"]["run_id"]


def batch_of(run_id: str, index: int, timestamp: int) -> dict:
    metrics = [
        {"key": f"k{j % 10}", "value": float(j), "timestamp": timestamp, "step": index * BATCH + j}
        for j in range(BATCH)
    ]
    return {"run_id": run_id, "metrics": metrics}


def log_metric(call: Call, experiment: str, calls: int) -> dict:
    run_id = create_run(call, experiment, "inproc-log-metric")
    now = int(time.time() * 1000)

    def body(key: str, i: int) -> dict:
        return {"run_id": run_id, "key": key, "value": 1.0 / (i + 1), "timestamp": now + i, "step": i}

    for i in range(5):
        call("POST", "runs/log-metric", body("warm", i))
    latencies = [call("POST", "runs/log-metric", body("loss", i))[0] for i in range(calls)]
    return {"calls_per_s": calls / sum(latencies), "p50_ms": statistics.median(latencies) * 1000}


def log_batch(call: Call, experiment: str, batches: int) -> dict:
    run_id = create_run(call, experiment, "inproc-log-batch")
    now = int(time.time() * 1000)
    call("POST", "runs/log-batch", batch_of(run_id, batches, now))
    prepared = [batch_of(run_id, i, now) for i in range(batches)]
    latencies = [call("POST", "runs/log-batch", body)[0] for body in prepared]
    return {"metrics_per_s": batches * BATCH / sum(latencies), "p50_ms": statistics.median(latencies) * 1000}


def log_batch_concurrent(new: Callable[[], Call], experiment: str, clients: int, batches: int) -> dict:
    """`clients` threads in this one process, each its own test client and run."""
    barrier = threading.Barrier(clients)
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            call = new()
            run_id = create_run(call, experiment, f"inproc-log-batch-{n}")
            now = int(time.time() * 1000)
            prepared = [batch_of(run_id, i, now) for i in range(batches)]
            barrier.wait()
            started = time.monotonic()
            for body in prepared:
                call("POST", "runs/log-batch", body)
            spans.append((started, time.monotonic()))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return {"metrics_per_s": clients * batches * BATCH / wall, "clients": clients}


def search(call: Call, experiment: str, cfg: dict) -> dict:
    fields = {
        "experiment_ids": [experiment],
        "filter": cfg["filter"],
        "run_view_type": "ACTIVE_ONLY",
        "max_results": cfg["max_results"],
        "order_by": cfg["order_by"],
    }
    for _ in range(2):
        payload = call_json(call, "POST", "runs/search", fields)
    latencies = [call("POST", "runs/search", fields)[0] for _ in range(cfg["queries"])]
    ids = [r["info"]["run_id"] for r in payload.get("runs", [])]
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": pct(latencies, 95) * 1000,
        "results": len(ids),
        "digest": hashlib.sha256(",".join(ids).encode()).hexdigest()[:16],
    }


def full_history(call: Call, run_id: str, key: str) -> tuple[float, int]:
    """All pages, as the client fetches them: (seconds in the server, points)."""
    seconds, points, token = 0.0, 0, None
    while True:
        fields = {"run_id": run_id, "run_uuid": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
        if token:
            fields["page_token"] = token
        elapsed, body = call("GET", "metrics/get-history", fields)
        payload = json.loads(body)
        seconds += elapsed
        points += len(payload.get("metrics", []))
        token = payload.get("next_page_token")
        if not token:
            return seconds, points


def history(call: Call, run_id: str, key: str, calls: int) -> dict:
    full_history(call, run_id, key)
    samples = [full_history(call, run_id, key) for _ in range(calls)]
    return {"p50_ms": statistics.median(s for s, _ in samples) * 1000, "points": samples[-1][1]}


def main(side: str, config_path: str, out: str) -> None:
    with open(config_path) as f:
        cfg = json.load(f)
    new = mlflow_caller() if side == "mlflow" else cellar_caller(cfg["team"], cfg["token"])
    call = new()
    exps = cfg["experiments"]
    results = {}
    steps = [
        ("log_metric", lambda: log_metric(call, exps["logging"], cfg["log_metric_calls"])),
        ("batch1", lambda: log_batch(call, exps["logging"], cfg["batches_1"])),
        ("batch8", lambda: log_batch_concurrent(new, exps["logging"], cfg["clients"], cfg["batches_n"])),
        ("search", lambda: search(call, exps["search"], cfg["search"])),
        ("history", lambda: history(call, cfg["history_run"], cfg["history_key"], cfg["history_calls"])),
    ]
    for name, step in steps:
        started = time.perf_counter()
        results[name] = step()
        print(f"  in-process {name}: {results[name]} ({time.perf_counter() - started:.1f}s)", flush=True)
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
