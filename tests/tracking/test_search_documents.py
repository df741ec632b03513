"""PostgreSQL's search documents (tracking/search/documents.py) say exactly what the tables say,
after every kind of write, a refused write, a retried one, and a rebuild."""

from __future__ import annotations

import pytest
from django.db import connection

from cellar_server.tracking.models import Run
from cellar_server.tracking.search import documents
from tests.tracking.search_documents import documents_from_tables, documents_of

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="search documents exist on PostgreSQL only"),
]


def _points(*points) -> list[dict]:
    return [{"key": k, "value": v, "timestamp": ts, "step": step} for k, v, ts, step in points]


def test_documents_follow_every_write(ml):
    run_id = ml.run()
    pk = Run.all_teams.get(run_uuid=run_id).pk

    def check(expected_keys: dict | None = None) -> dict:
        docs = documents_of(pk)
        assert docs == documents_from_tables(pk)
        for kind, keys in (expected_keys or {}).items():
            assert set(docs[kind]) == set(keys), kind
        return docs

    check({"tags": ["mlflow.runName"], "params": [], "metrics": []})
    batch = {
        "run_id": run_id,
        "metrics": _points(("acc", 0.5, 10, 1), ("acc", 0.7, 11, 2), ("loss", "NaN", 10, 1), ("big", 1e300, 1, 0),
                           ("tiny", 1e-300, 1, 0), ("inf", "Infinity", 1, 0), ("ninf", "-Infinity", 1, 0)),
        "params": [{"key": "lr", "value": "0.1"}, {"key": "ünï", "value": 'quote " and \\ back'}],
        "tags": [{"key": "stage", "value": "dev"}],
    }  # fmt: skip
    assert ml.post("runs/log-batch", batch).status_code == 200
    docs = check({"params": ["lr", "ünï"], "metrics": ["acc", "loss", "big", "tiny", "inf", "ninf"]})
    assert docs["metrics"]["acc"] == (0.7, 11, 2) and docs["metrics"]["loss"] == (None, 10, 1)
    assert docs["metrics"]["big"][0] == 1e300 and docs["metrics"]["tiny"][0] == 1e-300
    assert docs["metrics"]["inf"][0] == float("inf") and docs["metrics"]["ninf"][0] == float("-inf")

    assert ml.post("runs/log-batch", batch).status_code == 200  # a client retry: nothing changes
    assert documents_of(pk) == docs
    older = {"run_id": run_id, "metrics": _points(("acc", 0.1, 5, 0))}  # not the latest: acc stays
    assert ml.post("runs/log-batch", older).status_code == 200
    assert check()["metrics"]["acc"] == (0.7, 11, 2)
    newer = {"run_id": run_id, "key": "loss", "value": 0.25, "timestamp": 20, "step": 3}
    assert ml.post("runs/log-metric", newer).status_code == 200
    assert check()["metrics"]["loss"] == (0.25, 20, 3)

    assert ml.post("runs/set-tag", {"run_id": run_id, "key": "stage", "value": "prod"}).status_code == 200
    assert check()["tags"]["stage"] == "prod"
    assert ml.post("runs/delete-tag", {"run_id": run_id, "key": "stage"}).status_code == 200
    assert "stage" not in check()["tags"]
    assert ml.post("runs/update", {"run_id": run_id, "run_name": "renamed"}).status_code == 200
    assert check()["tags"]["mlflow.runName"] == "renamed"

    before = documents_of(pk)
    refused = {"run_id": run_id, "metrics": _points(("acc", 9.0, 99, 99)), "params": [{"key": "lr", "value": "0.2"}],
               "tags": [{"key": "t", "value": "1"}]}  # fmt: skip
    assert ml.post("runs/log-batch", refused).status_code == 400  # a param rewrite: nothing is written
    assert documents_of(pk) == before == documents_from_tables(pk)


def test_rebuild_reproduces_what_the_writes_merged(ml):
    run_ids = [ml.run() for _ in range(3)]
    for i, run_id in enumerate(run_ids):
        batch = {
            "run_id": run_id,
            "metrics": _points(("m", i / 3, 1, i), ("n", "NaN", 1, 0)),
            "params": [{"key": "p", "value": str(i)}],
            "tags": [{"key": "t", "value": "x" * (i + 1)}],
        }
        assert ml.post("runs/log-batch", batch).status_code == 200
    pks = list(Run.all_teams.filter(run_uuid__in=run_ids).values_list("pk", flat=True))
    merged = {pk: documents_of(pk) for pk in pks}
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tracking_run SET search_params = '{}', search_tags = '{}', search_metrics = '{}' "
            "WHERE id = ANY(%s)",
            [pks],
        )
    assert documents.rebuild(pks) == 3
    assert {pk: documents_of(pk) for pk in pks} == merged
    assert all(merged[pk] == documents_from_tables(pk) for pk in pks)


def test_the_rebuild_command(ml):
    from io import StringIO

    from django.core.management import call_command

    run_id = ml.run()
    pk = Run.all_teams.get(run_uuid=run_id).pk
    assert ml.post("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"}).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tracking_run SET search_params = '{}' WHERE id = %s", [pk])
    out = StringIO()
    call_command("cellar_search_rebuild", stdout=out)
    assert "Rebuilt the search documents of" in out.getvalue()
    assert documents_of(pk)["params"] == {"p": "1"}
