"""Searches run as prepared statements on PostgreSQL (tracking/search/prepared.py): the same
answers as unprepared, one plan per distinct search and session, a new session prepares again,
and a statement that vanished from the session falls back to running the search unprepared."""

from __future__ import annotations

import pytest
from django.db import connection

from cellar_server.tracking.search import prepared

pytestmark = [
    pytest.mark.django_db(transaction=True),  # outside a transaction, where searches are prepared
    pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared searches are PostgreSQL's"),
]


def _session_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'cellar_search_%%'")
        return {name for (name,) in cursor.fetchall()}


def _search(ml, filter_string: str) -> list[str]:
    body = {"experiment_ids": ["0"], "filter": filter_string, "order_by": ["metrics.acc DESC"]}
    response = ml.post("runs/search", body)
    assert response.status_code == 200, response.content
    return [r["info"]["run_name"] for r in response.json().get("runs", [])]


@pytest.fixture
def scored_runs(ml):
    for i in range(6):
        run_id = ml.run()
        batch = {
            "run_id": run_id,
            "metrics": [{"key": "acc", "value": i / 10, "timestamp": 1, "step": 0}],
            "params": [{"key": "parity", "value": "even" if i % 2 == 0 else "odd"}],
            "tags": [{"key": "mlflow.runName", "value": f"r{i}"}],
        }
        assert ml.post("runs/log-batch", batch).status_code == 200


def test_prepared_searches_answer_as_unprepared(ml, scored_runs):
    assert not connection.in_atomic_block
    first = _search(ml, "params.parity = 'even'")
    assert first == ["r4", "r2", "r0"]
    assert len(_session_statements()) == 1
    assert _search(ml, "params.parity = 'even'") == first  # executed, not prepared again
    assert len(_session_statements()) == 1
    assert _search(ml, "params.parity = 'odd' and metrics.acc > 0.2") == ["r5", "r3"]
    assert len(_session_statements()) == 2


def test_a_new_session_prepares_again(ml, scored_runs):
    assert _search(ml, "metrics.acc >= 0.3") == ["r5", "r4", "r3"]
    connection.close()
    assert _session_statements() == set()  # a new session holds none
    assert _search(ml, "metrics.acc >= 0.3") == ["r5", "r4", "r3"]
    assert len(_session_statements()) == 1


def test_a_statement_gone_from_the_session_falls_back_to_an_unprepared_search(ml, scored_runs):
    assert _search(ml, "metrics.acc < 0.2") == ["r1", "r0"]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as a pooler handing out another session would look
    assert _search(ml, "metrics.acc < 0.2") == ["r1", "r0"]
    assert _search(ml, "metrics.acc < 0.2") == ["r1", "r0"]  # and prepared again after that
    assert len(_session_statements()) == 1


def test_too_many_statements_start_over(ml, scored_runs, monkeypatch):
    monkeypatch.setattr(prepared, "_MAX_STATEMENTS", 3)
    for threshold in range(5):
        assert len(_search(ml, f"metrics.acc >= {threshold / 10}")) == 6 - threshold
    assert 1 <= len(_session_statements()) <= 3
