"""Several serve processes flush the same minute bucket at once: every count lands once."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from cellar_server.serving import services
from cellar_server.serving.models import PredictionMinute
from tests.serving.conftest import constant_model, training_data

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_flushes_of_one_bucket_add_up(team, register, deploy):
    frame, _ = training_data()
    version = register(team, "churn", constant_model(1.0, frame), frame)
    deployment = deploy(team, "churn-api", {version: 1})
    minute = time.time()
    record = {"kind": "stats", "deployment_id": deployment.pk, "version_id": str(version.pk), "minute": minute,
              "requests": 1, "rows": 2, "errors": 0, "latency_hist": [0, 1]}  # fmt: skip
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def flush() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                services.predictions_ingest(records=[record])
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=flush) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    row = PredictionMinute.all_teams.get()
    assert (row.requests, row.rows, row.latency_hist) == (40, 80, [0, 40])
