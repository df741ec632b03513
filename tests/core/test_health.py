"""Probes and metrics: /healthz, /readyz against real PostgreSQL/SQLite and Redis, /metrics."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ready_with_database_broker_and_store(client, broker, settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "broker", "artifact_store"}
    assert all(check["ok"] for check in body["checks"].values())


def test_readyz_reports_an_unreachable_broker(client, settings, tmp_path):
    from cellar_server.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = f"redis+socket://{tmp_path / 'nobody-listens.sock'}"
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = previous
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_readyz_reports_an_unusable_artifact_store(client, broker, settings):
    settings.ARTIFACT_STORE_URL = "ftp://nowhere/"
    body = client.get("/readyz").json()
    assert body["checks"]["artifact_store"]["ok"] is False
    assert "ftp" in body["checks"]["artifact_store"]["error"]


def test_metrics_count_requests_by_route(client):
    client.get("/healthz")
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("cellar_http_requests_total{") and 'route="healthz"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert "cellar_http_request_duration_seconds_bucket" in text


def test_requests_are_logged_as_json(client, caplog):
    import json
    import logging

    from cellar_server.core.logging import JsonFormatter

    with caplog.at_level(logging.INFO, logger="cellar.request"):
        client.get("/healthz")
    record = next(r for r in caplog.records if r.name == "cellar.request")
    payload = json.loads(JsonFormatter().format(record))
    assert payload["path"] == "/healthz" and payload["status"] == 200 and "duration_ms" in payload


def test_the_platforms_own_traffic_logs_at_debug_unless_it_fails(client, caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="cellar.request"):
        client.get("/api/v1/serving/routes/")  # no serve credential: refused, so worth a line
        client.get("/healthz")
    levels = {r.path: r.levelno for r in caplog.records if r.name == "cellar.request"}
    assert levels == {"/api/v1/serving/routes/": logging.INFO, "/healthz": logging.INFO}
    caplog.clear()

    from cellar_server.compute.credentials import worker_token

    with caplog.at_level(logging.DEBUG, logger="cellar.request"):
        answer = client.get("/api/v1/compute/pools/", HTTP_AUTHORIZATION=f"Bearer {worker_token()}")
    assert answer.status_code == 200
    [record] = [r for r in caplog.records if r.name == "cellar.request"]
    assert record.levelno == logging.DEBUG  # an agent's routine poll: not in an INFO log
