"""Per-task tokens and the worker API: a token authorizes its own task and lease and nothing else;
the API takes no session, no CSRF and no API token, only task tokens, and answers bad bodies with
JSON errors."""

from __future__ import annotations

import pytest
from django.core import signing

from cellar.pipelines.wire import Lease
from cellar_server.pipelines.engine import results
from cellar_server.pipelines.engine.tokens import SALT, TokenInvalid, task_token, token_verify
from tests.pipelines.engine.conftest import ENGINE_API, fresh, task_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tasks(fanout_version, start_run, worker):
    """A run with square[0] and square[1] dispatched (not claimed)."""
    run = start_run(fanout_version, {"n": 2})
    (make,) = worker.take(run)
    worker.claim([make])
    worker.report([worker.execute(make)])
    (expand,) = worker.take(run)
    worker.claim([expand])
    worker.report([worker.succeed(expand, items=[1, 2])])
    return run, worker.take(run)


def test_a_token_verifies_for_its_task_and_lease_only(two_tasks):
    _run, (a, b) = two_tasks
    task = task_of(_run, "square", 0)
    token = task_token(task)
    payload = token_verify(token, task_id=task.pk, lease=task.lease)
    assert payload == {"team": task.team_id, "run": task.run_id, "task": task.pk, "lease": task.lease}
    with pytest.raises(TokenInvalid, match="another task"):
        token_verify(token, task_id=b.item.task, lease=task.lease)
    with pytest.raises(TokenInvalid, match="another lease"):
        token_verify(token, task_id=task.pk, lease="0" * 32)
    with pytest.raises(TokenInvalid, match="not issued by this server"):
        token_verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), task_id=task.pk, lease=task.lease)
    forged = signing.dumps({"task": task.pk, "lease": task.lease}, salt="another-salt")
    with pytest.raises(TokenInvalid):
        token_verify(forged, task_id=task.pk, lease=task.lease)
    with pytest.raises(TokenInvalid, match="No task token"):
        token_verify("", task_id=task.pk, lease=task.lease)


@pytest.mark.parametrize("how", ["tampered", "other-task", "other-lease"])
def test_bad_tokens_are_refused_per_entry(two_tasks, worker, how):
    run, (a, b) = two_tasks
    token = {
        "tampered": a.item.token[:-3] + "xyz",
        "other-task": b.item.token,
        "other-lease": signing.dumps(
            {"team": run.team_id, "run": run.pk, "task": a.item.task, "lease": "f" * 32}, salt=SALT, compress=False
        ),
    }[how]
    bad = Lease(task=a.item.task, lease=a.item.lease, token=token)
    answer = results.tasks_claim(worker="w", leases=[bad, b.lease])
    assert answer == {"claimed": [b.item.task], "refused": {str(a.item.task): "bad_token"}}
    assert task_of(run, "square", 0).state == "dispatched"
    beat = results.tasks_heartbeat(worker="w", leases=[bad])
    assert beat == {"alive": [], "cancel": [], "stale": [a.item.task]}
    report = worker.succeed(a, sq=1)
    report.token = token
    assert worker.report([report])["refused"] == {str(a.item.task): "bad_token"}


def test_the_worker_api_runs_a_pipeline_with_task_tokens_only(linear_version, start_run, api_worker):
    run = api_worker.drain(start_run(linear_version))
    assert run.state == "succeeded"
    assert task_of(run, "double").worker == "api-worker"


def test_the_worker_api_answers_each_endpoint(two_tasks, api_worker):
    run, (a, b) = two_tasks
    assert api_worker.claim([a]) == {"claimed": [a.item.task], "refused": {}}
    assert api_worker.heartbeat([a, b]) == {"alive": [a.item.task, b.item.task], "cancel": [], "stale": []}
    assert api_worker.report([api_worker.succeed(a, sq=1)]) == {"accepted": [a.item.task], "refused": {}}
    assert task_of(run, "square", 0).state == "succeeded"
    assert fresh(run).tasks_done == 3


BAD_BODIES = [
    ("not-an-object", "claims/", [1, 2]),
    ("no-worker", "claims/", {"tasks": []}),
    ("tasks-not-a-list", "heartbeats/", {"worker": "w", "tasks": {}}),
    ("task-id-text", "claims/", {"worker": "w", "tasks": [{"task": "1", "lease": "x", "token": "t"}]}),
    ("no-lease", "claims/", {"worker": "w", "tasks": [{"task": 1, "token": "t"}]}),
    ("bad-state", "results/", {"worker": "w", "results": [{"task": 1, "lease": "x", "token": "t", "state": "ok"}]}),
    (
        "outputs-not-a-map",
        "results/",
        {"worker": "w", "results": [{"task": 1, "lease": "x", "token": "t", "state": "succeeded", "outputs": []}]},
    ),
    (
        "time-not-a-number",
        "results/",
        {"worker": "w", "results": [{"task": 1, "lease": "x", "token": "t", "state": "failed", "started_at": "now"}]},
    ),
    ("too-many", "heartbeats/", {"worker": "w", "tasks": [{"task": 1, "lease": "x", "token": "t"}] * 2001}),
]


@pytest.mark.parametrize("name,endpoint,body", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_are_json_errors(api, name, endpoint, body):
    response = api.post(ENGINE_API + endpoint, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_engine_request"


def test_malformed_json_and_methods(api):
    response = api.generic("POST", ENGINE_API + "results/", "{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"
    assert api.get(ENGINE_API + "claims/").status_code == 405


def test_unknown_tasks_are_refused_not_errors(api, two_tasks):
    _run, (a, _b) = two_tasks
    body = {"worker": "w", "tasks": [{"task": 10**9, "lease": a.item.lease, "token": a.item.token}]}
    response = api.post(ENGINE_API + "claims/", body, format="json")
    assert response.status_code == 200
    assert response.json() == {"claimed": [], "refused": {str(10**9): "bad_token"}}


def test_a_task_token_grants_logging_to_its_tracking_run_while_in_flight(two_tasks, worker):
    from cellar_server.pipelines.engine.tokens import task_token_grant

    run, (a, _b) = two_tasks
    grant = task_token_grant(a.item.token)
    assert grant is not None and grant.tracking_run == run.tracking_run and grant.task_id == a.item.task
    assert grant.team_id == run.team_id and grant.run_id == run.pk
    assert task_token_grant(a.item.token[:-3] + "xyz") is None
    worker.claim([a])
    worker.report([worker.succeed(a, sq=1)])
    assert task_token_grant(a.item.token) is None  # the attempt ended: its token stops working
