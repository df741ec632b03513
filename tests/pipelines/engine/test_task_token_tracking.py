"""A step's own task token on the APIs it calls while it runs: it logs to its run's tracking
run through the MLflow-compatible API (what `cellar.log_metric` inside a step does), reaches
nothing else, and stops working when the attempt ends."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from cellar_server.pipelines.models import PipelineRun
from cellar_server.tracking.models import Metric
from tests.pipelines.engine.conftest import linear_notebook

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(promote, start_run, worker):
    """(run, the first task as its agent holds it): claimed, so its attempt is in flight."""
    run = start_run(promote(linear_notebook()))
    (first,) = worker.take(run)
    worker.claim([first])
    return run, first


def call(method: str, path: str, token: str, body: dict | None = None, team: str = "acme"):
    client = Client()
    url = f"/t/{team}/mlflow/api/2.0/mlflow/{path}"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if method == "GET":
        return client.get(url, body or {}, **headers)
    return client.post(url, json.dumps(body or {}), content_type="application/json", **headers)


def test_a_step_logs_metrics_params_and_tags_to_its_run(running):
    run, task = running
    token, tracking = task.item.token, run.tracking_run
    assert call("GET", "runs/get", token, {"run_id": tracking}).status_code == 200
    answer = call(
        "POST",
        "runs/log-batch",
        token,
        {
            "run_id": tracking,
            "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1, "step": 3}],
            "params": [{"key": "depth", "value": "4"}],
            "tags": [{"key": "phase", "value": "train"}],
        },
    )
    assert answer.status_code == 200, answer.content
    assert call("POST", "runs/log-metric", token, {"run_id": tracking, "key": "acc", "value": 0.9, "timestamp": 2})
    assert sorted(Metric.objects.filter(run__run_uuid=tracking).values_list("key", flat=True)) == ["acc", "loss"]


def test_a_task_token_reaches_no_other_run_and_no_other_endpoint(running, promote, start_run, team):
    run, task = running
    token = task.item.token
    other = start_run(promote(linear_notebook(), name="other"))
    for path, body in [
        ("runs/get", {"run_id": other.tracking_run}),
        ("runs/log-batch", {"run_id": other.tracking_run, "metrics": []}),
    ]:
        method = "GET" if path == "runs/get" else "POST"
        answer = call(method, path, token, body)
        assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    answer = call("POST", "experiments/search", token, {})
    assert answer.status_code == 403 and answer.json()["error_code"] == "PERMISSION_DENIED"
    answer = call("POST", "runs/create", token, {"experiment_id": "0"})
    assert answer.status_code == 403
    # Another team's URL: not found, as for any caller outside the team.
    assert call("GET", "runs/get", token, {"run_id": run.tracking_run}, team="rival").status_code == 404
    # The REST API: the token is recognised (403, not 401) but grants nothing there.
    rest = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert rest.status_code == 403


def test_artifacts_only_under_the_runs_own_folder(running, promote, start_run):
    run, task = running
    token = task.item.token
    info = call("GET", "runs/get", token, {"run_id": run.tracking_run}).json()["run"]["info"]
    own = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    base = "/t/acme/mlflow/api/2.0/mlflow-artifacts/artifacts"
    put = client.put(f"{base}/{own}/notes.txt", b"hello", content_type="application/octet-stream", **headers)
    assert put.status_code == 200, put.content
    other = start_run(promote(linear_notebook(), name="other"))
    elsewhere = f"{base}/0/{other.tracking_run}/artifacts/notes.txt"
    assert client.put(elsewhere, b"x", content_type="application/octet-stream", **headers).status_code == 404


def test_the_token_stops_working_when_the_attempt_ends(running, worker):
    run, task = running
    worker.report([worker.execute(task)])
    answer = call("GET", "runs/get", task.item.token, {"run_id": run.tracking_run})
    assert answer.status_code == 401 and answer.json()["error_code"] == "UNAUTHENTICATED"
    assert PipelineRun.all_teams.get(pk=run.pk).tasks_done >= 1
