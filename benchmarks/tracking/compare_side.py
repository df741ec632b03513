"""One side of bench_compare.py, run inside that side's own venv (Cellar's or MLflow's).

    python compare_side.py cellar|mlflow CONFIG_JSON OUT_JSON

Cellar: logs RUNS × METRICS × STEPS points through its real write path (services.run_log_batch,
which also keeps the step-bucket summaries), then times the compare page and its metric charts
in-process (django.test.Client), cold (cache cleared) and warm, and counts the bytes sent.
MLflow: the same points written straight into its database (its log path would take hours),
then the data its UI fetches for the same view, in-process (Flask test client): the runs
(runs/search) and, per metric, metrics/get-history-bulk-interval for the 100 runs.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def value(run: int, metric: int, step: int) -> float:
    return math.sin(step / 400 + metric) / (1 + step / 5000) + run / 1000


def cellar(cfg: dict) -> dict:
    sys.path.insert(0, str(REPO / "platform"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cellar_server.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from cellar_server.teams.models import Team
    from cellar_server.tracking.services import experiments, runs

    team = Team.objects.get(slug=cfg["team"])
    exp = experiments.experiment_create(team=team, name="compare-bench")
    made = []
    started = time.perf_counter()
    for r in range(cfg["runs"]):
        run = runs.run_create(team=team, experiment=exp, run_name=f"run-{r:03d}")
        runs.run_log_batch(
            run=run, params=[{"key": "lr", "value": str(r / 1000)}, {"key": "depth", "value": str(r % 7)}]
        )
        for m in range(cfg["metrics"]):
            for start in range(0, cfg["steps"], 1000):
                batch = [
                    {"key": f"m{m}", "value": value(r, m, s), "timestamp": 1_700_000_000_000 + s, "step": s}
                    for s in range(start, min(start + 1000, cfg["steps"]))
                ]
                runs.run_log_batch(run=run, metrics=batch)
        made.append(run.run_uuid)
    logged = cfg["runs"] * cfg["metrics"] * cfg["steps"]
    write_s = time.perf_counter() - started

    client = Client()
    client.force_login(get_user_model().objects.get(username=cfg["user"]))
    ids = ",".join(made)
    keys = [f"m{m}" for m in range(cfg["metrics"])]

    def view() -> tuple[float, int]:
        total_s, total_b = 0.0, 0
        t0 = time.perf_counter()
        page = client.get(f"/t/{cfg['team']}/compare/", {"runs": ids, "metric": keys})
        total_s += time.perf_counter() - t0
        assert page.status_code == 200, page.status_code
        total_b += len(page.content)
        for key in keys:
            t0 = time.perf_counter()
            chart = client.get(f"/t/{cfg['team']}/charts/metric/", {"runs": ids, "key": key}, HTTP_HX_REQUEST="true")
            total_s += time.perf_counter() - t0
            assert chart.status_code == 200, chart.status_code
            total_b += len(chart.content)
        return total_s * 1000, total_b

    cold, warm = [], []
    for _ in range(cfg["repeats"]):
        cache.clear()
        cold.append(view())
        warm.append(view())
    return {
        "points_logged": logged,
        "write_points_per_s": logged / write_s,
        "cold_ms": statistics.median(t for t, _ in cold),
        "warm_ms": statistics.median(t for t, _ in warm),
        "bytes": max(b for _, b in cold),
    }


def mlflow(cfg: dict) -> dict:
    import sqlite3

    from mlflow.server import app  # configured from the environment, as `mlflow server` configures workers

    client = app.test_client()

    def call(method: str, endpoint: str, fields: dict):
        path = f"/api/2.0/mlflow/{endpoint}"
        response = client.get(path, query_string=fields) if method == "GET" else client.post(path, json=fields)
        assert response.status_code == 200, (endpoint, response.status_code, response.get_data()[:300])
        return response.get_data()

    exp_id = json.loads(call("POST", "experiments/create", {"name": "compare-bench"}))["experiment_id"]
    made = []
    for r in range(cfg["runs"]):
        run = json.loads(call("POST", "runs/create", {"experiment_id": exp_id, "run_name": f"run-{r:03d}"}))
        run_id = run["run"]["info"]["run_id"]
        call(
            "POST",
            "runs/log-batch",
            {
                "run_id": run_id,
                "params": [{"key": "lr", "value": str(r / 1000)}, {"key": "depth", "value": str(r % 7)}],
            },
        )
        made.append(run_id)
    conn = sqlite3.connect(cfg["db_path"], timeout=60)
    for r, run_id in enumerate(made):
        for m in range(cfg["metrics"]):
            rows = [(f"m{m}", value(r, m, s), 1_700_000_000_000 + s, run_id, s, False) for s in range(cfg["steps"])]
            conn.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
            last = rows[-1]
            conn.execute(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
                (last[0], last[1], last[2], last[4], False, run_id),
            )
        conn.commit()
    conn.close()

    def view() -> tuple[float, int]:
        total_s, total_b = 0.0, 0
        t0 = time.perf_counter()
        body = call("POST", "runs/search", {"experiment_ids": [exp_id], "max_results": cfg["runs"]})
        total_s += time.perf_counter() - t0
        total_b += len(body)
        for m in range(cfg["metrics"]):
            t0 = time.perf_counter()
            body = call(
                "GET", "metrics/get-history-bulk-interval", {"run_ids": made, "metric_key": f"m{m}", "max_results": 320}
            )
            total_s += time.perf_counter() - t0
            total_b += len(body)
        return total_s * 1000, total_b

    samples = [view() for _ in range(cfg["repeats"])]
    return {"ms": statistics.median(t for t, _ in samples), "bytes": max(b for _, b in samples)}


if __name__ == "__main__":
    side, config_path, out_path = sys.argv[1:4]
    cfg = json.loads(Path(config_path).read_text())
    result = cellar(cfg) if side == "cellar" else mlflow(cfg)
    Path(out_path).write_text(json.dumps(result))
