"""What the unmodified MLflow client costs by itself: the same calls as client_script.py, answered
instantly with canned responses (no network, no server). Runs in .venv-mlflow.

    python client_floor.py CONFIG.json OUT.json

`mlflow.utils.rest_utils.http_request` is replaced by a function that returns a prepared body:
`{}` for log-metric and log-batch, 100 runs with 5 params, 3 tags and 5 metrics for runs/search,
and pages of 25,000 points for metrics/get-history. Everything else is the real client: building
and validating entities, proto-JSON encoding, parsing the answer into protos and entities. A
server that answered in zero time would still leave these figures to the client, so they bound
the end-to-end ratio any server can reach: MLflow's end-to-end time / this floor.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import mlflow.utils.rest_utils as rest_utils
from client_script import BATCH, batch_of
from mlflow import MlflowClient

RUN_ID = "0" * 32


def search_body(n: int) -> str:
    runs = []
    for i in range(n):
        run_id = f"{i:032x}"
        runs.append(
            {
                "info": {
                    "run_id": run_id, "run_uuid": run_id, "run_name": f"bench-run-{i:06d}", "experiment_id": "1",
                    "user_id": "bench", "status": "FINISHED", "start_time": 1_700_000_000_000 + i,
                    "end_time": 1_700_000_000_500 + i, "artifact_uri": f"mlflow-artifacts:/1/{run_id}/artifacts",
                    "lifecycle_stage": "active",
                },
                "data": {
                    "metrics": [
                        {"key": f"m{j}", "value": 0.123456789 * (j + 1), "timestamp": 1_700_000_000_000, "step": 0}
                        for j in range(5)
                    ],
                    "params": [{"key": f"p{j}", "value": f"v{j}"} for j in range(5)],
                    "tags": [
                        {"key": "mlflow.runName", "value": f"bench-run-{i:06d}"},
                        {"key": "stage", "value": "dev"},
                        {"key": "team", "value": "group-1"},
                    ],
                },
                "inputs": {},
            }
        )  # fmt: skip
    return json.dumps({"runs": runs})


def history_pages(points: int, page: int = 25000) -> list[str]:
    pages = []
    for start in range(0, points, page):
        metrics = [
            {"key": "loss", "value": 1.0 / (1 + s / 1000), "timestamp": 1_700_000_000_000 + s * 10, "step": s}
            for s in range(start, min(points, start + page))
        ]
        body = {"metrics": metrics}
        if start + page < points:
            body["next_page_token"] = f"token-{start + page}"
        pages.append(json.dumps(body))
    return pages


class Canned:
    status_code = 200
    headers = {"Content-Type": "application/json"}

    def __init__(self, text: str):
        self.text = text
        self.content = text.encode()

    def json(self):
        return json.loads(self.text)


def main(config_path: str, out: str) -> None:
    with open(config_path) as f:
        cfg = json.load(f)
    search_text = search_body(cfg["search"]["results"])
    pages = history_pages(cfg["history_points"])

    def fake_http_request(host_creds, endpoint, method, **kwargs):
        if endpoint.endswith("runs/search"):
            return Canned(search_text)
        if endpoint.endswith("metrics/get-history"):
            token = (kwargs.get("params") or {}).get("page_token")
            return Canned(pages[int(token.split("-")[1]) // 25000 if token else 0])
        return Canned("{}")

    rest_utils.http_request = fake_http_request
    client = MlflowClient("http://127.0.0.1:1")
    now = int(time.time() * 1000)

    def per_call(fn, n: int) -> float:
        fn()
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1000

    batches = [batch_of(i, now) for i in range(cfg["batches_1"])]
    it = iter(range(10**9))
    results = {
        "log_metric_ms": per_call(lambda: client.log_metric(RUN_ID, "loss", 0.5, step=next(it)), 200),
        "log_batch_ms": per_call(lambda: client.log_batch(RUN_ID, metrics=batches[next(it) % len(batches)]), 10),
        "search_ms": per_call(
            lambda: client.search_runs(
                ["1"], cfg["search"]["filter"], order_by=cfg["search"]["order_by"], max_results=100
            ),
            cfg["search"]["queries"],
        ),
        "history_ms": per_call(lambda: client.get_metric_history(RUN_ID, "loss"), cfg["history_calls"]),
        "history_points": len(client.get_metric_history(RUN_ID, "loss")),
        "batch_size": BATCH,
    }
    print(f"  client alone (canned answers): {results}", flush=True)
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
