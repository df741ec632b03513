"""50 concurrent clients logging to one run lose no point and duplicate none.

Writers contend differently on PostgreSQL (row locks, ON CONFLICT) and SQLite
(one writer at a time), so `make test` runs this on both.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from django.db import connection

from cellar_server.tracking.models import LatestMetric, Metric, Param, Run
from tests.factories import mint_token
from tests.tracking.search_documents import documents_from_tables, documents_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_databases]

CLIENTS = 50
SINGLE_CALLS = 10
BATCHES = 2
BATCH_SIZE = 100


def test_fifty_clients_on_one_run_lose_nothing(live_server, team, members):
    _, raw = mint_token(team, members["editor"])
    base = f"{live_server.url}/t/acme/mlflow/api/2.0/mlflow/"
    headers = {"Authorization": f"Bearer {raw}"}
    run_id = requests.post(base + "runs/create", json={"experiment_id": "0"}, headers=headers, timeout=30).json()[
        "run"
    ]["info"]["run_id"]
    barrier = threading.Barrier(CLIENTS)
    failures: list[str] = []

    def client(n: int) -> None:
        session = requests.Session()
        session.headers.update(headers)
        barrier.wait()
        step = n * 10_000
        for _ in range(SINGLE_CALLS):
            body = {"run_id": run_id, "key": "loss", "value": step, "timestamp": 1, "step": step}
            _post(session, base + "runs/log-metric", body, failures)
            step += 1
        for _ in range(BATCHES):
            metrics = [{"key": "loss", "value": s, "timestamp": 1, "step": s} for s in range(step, step + BATCH_SIZE)]
            batch = {
                "run_id": run_id,
                "metrics": metrics,
                "params": [{"key": f"client{n}", "value": str(n)}],
                "tags": [{"key": f"client{n}", "value": str(step)}, {"key": "last", "value": str(n)}],
            }
            _post(session, base + "runs/log-batch", batch, failures)
            step += BATCH_SIZE

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert failures == []
    run = Run.all_teams.get(run_uuid=run_id)
    expected = CLIENTS * (SINGLE_CALLS + BATCHES * BATCH_SIZE)
    assert Metric.objects.filter(run=run, key="loss").count() == expected
    assert Metric.objects.filter(run=run, key="loss").values("step").distinct().count() == expected
    assert Param.objects.filter(run=run).count() == CLIENTS
    top_step = (CLIENTS - 1) * 10_000 + SINGLE_CALLS + BATCHES * BATCH_SIZE - 1
    assert LatestMetric.objects.get(run=run, key="loss").step == top_step
    if connection.vendor == "postgresql":  # concurrent merges into the search documents lost nothing
        docs = documents_of(run.pk)
        assert docs == documents_from_tables(run.pk)
        assert len(docs["params"]) == CLIENTS and docs["metrics"]["loss"][2] == top_step


def _post(session: requests.Session, url: str, body: dict, failures: list[str]) -> None:
    # Like the MLflow client, retry what the network drops (the test server's listen backlog is
    # small): a write may then arrive twice, and must still count once.
    for attempt in range(6):
        try:
            response = session.post(url, json=body, timeout=120)
        except requests.ConnectionError:
            time.sleep(0.05 * 2**attempt)
            continue
        if response.status_code != 200:
            failures.append(f"{response.status_code} {response.text[:200]}")
        return
    failures.append(f"gave up on {url}")
