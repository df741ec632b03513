"""The deployments API: roles, another team, bad input, audit; the serve-credential endpoints."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cellar_server.serving.credentials import serve_token
from cellar_server.serving.models import Deployment, DeploymentKey, PredictionMinute
from cellar_server.teams.models import AuditEvent
from tests.serving.conftest import constant_model, mint_key, training_data

pytestmark = pytest.mark.django_db

URL = "/api/v1/teams/acme/deployments/"


@pytest.fixture
def version(team, register):
    frame, _ = training_data()
    return register(team, "churn", constant_model(1.0, frame), frame)


@pytest.fixture
def serve_api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {serve_token()}")
    return client


@pytest.mark.parametrize(
    "role, status", [("viewer", 403), ("editor", 403), ("admin", 201), ("owner", 201)], ids=lambda v: str(v)
)
def test_deploying_takes_admin(role, status, members, api_as, version):
    response = api_as(members[role]).post(
        URL, {"name": "churn-api", "routes": [{"version_id": str(version.pk), "weight": 1}]}, format="json"
    )
    assert response.status_code == status, response.json()
    if status == 201:
        body = response.json()
        assert body["name"] == "churn-api" and body["state"] == "pending"
        assert body["routes"] == [{"version_id": str(version.pk), "weight": 1.0, "health": "pending", "error": ""}]
        event = AuditEvent.all_teams.get(verb="deployment.create")
        assert event.actor == members[role] and event.details["routes"][0]["version_id"] == str(version.pk)
    else:
        assert response.json()["error"]["code"] == "missing_scope"
        assert not Deployment.all_teams.exists()


@pytest.mark.parametrize("role", ["viewer", "editor", "admin", "owner"])
def test_every_member_reads(role, members, api_as, team, version, deploy):
    deploy(team, "churn-api", {version: 1})
    client = api_as(members[role])
    listed = client.get(URL).json()
    assert [d["name"] for d in listed["results"]] == ["churn-api"]
    assert client.get(URL + "churn-api/").status_code == 200
    assert client.get(URL + "churn-api/traffic/").json()["requests"] == 0
    assert client.get(URL + "churn-api/keys/").status_code == 200


def test_another_team_sees_nothing(outsider, api_as, team, version, deploy):
    deploy(team, "churn-api", {version: 1})
    client = api_as(outsider)
    for path in ("", "churn-api/", "churn-api/traffic/", "churn-api/drift/", "churn-api/keys/"):
        assert client.get(URL + path).status_code == 404, path
    assert client.patch(URL + "churn-api/", {"sample_rate": 1}, format="json").status_code == 404
    assert client.delete(URL + "churn-api/").status_code == 404


def test_routing_to_another_teams_version_is_refused(members, api_as, other_team, register):
    frame, _ = training_data()
    theirs = register(other_team, "theirs", constant_model(2.0, frame), frame)
    response = api_as(members["admin"]).post(
        URL, {"name": "x", "routes": [{"version_id": str(theirs.pk), "weight": 1}]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_model_version"


@pytest.mark.parametrize(
    "body, code",
    [
        ({"name": "Bad Name", "routes": [{"version_id": "V", "weight": 1}]}, "invalid_name"),
        ({"name": "ok"}, "invalid_routes"),
        ({"name": "ok", "routes": [{"weight": 1}]}, "invalid_routes"),
        ({"name": "ok", "routes": [{"version_id": "V", "weight": -1}]}, "invalid_weight"),
        ({"name": "ok", "routes": [{"version_id": "V", "weight": "heavy"}]}, "invalid_weight"),
        ({"name": "ok", "routes": [{"version_id": "V", "weight": 0}]}, "invalid_weight"),
        ({"name": "ok", "routes": [{"version_id": "V"}, {"version_id": "V"}]}, "duplicate_route"),
        ({"name": "ok", "routes": [{"version_id": "999999", "weight": 1}]}, "unknown_model_version"),
        ({"name": "ok", "routes": [{"version_id": "V", "weight": 1}], "sample_rate": 2}, "invalid_sample_rate"),
    ],
    ids=["name", "no-routes", "no-version", "negative", "text-weight", "all-zero", "duplicate", "unknown", "rate"],
)
def test_bad_input_is_a_400_with_a_stable_code(members, api_as, version, body, code):
    for route in body.get("routes", []):
        if route.get("version_id") == "V":
            route["version_id"] = str(version.pk)
    response = api_as(members["admin"]).post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == code
    assert not Deployment.all_teams.exists()


def test_weights_are_normalized_and_a_route_change_is_audited(members, api_as, team, register, version):
    frame, _ = training_data()
    second = register(team, "churn", constant_model(2.0, frame), frame)
    client = api_as(members["admin"])
    client.post(URL, {"name": "churn-api", "routes": [{"version_id": str(version.pk), "weight": 3}]}, format="json")
    routes = [{"version_id": str(version.pk), "weight": 3}, {"version_id": str(second.pk), "weight": 1}]
    response = client.patch(URL + "churn-api/", {"routes": routes}, format="json")
    assert response.status_code == 200
    assert {r["version_id"]: r["weight"] for r in response.json()["routes"]} == {
        str(version.pk): 0.75,
        str(second.pk): 0.25,
    }
    event = AuditEvent.all_teams.get(verb="deployment.routes")
    assert event.details["before"]["routes"] == [{"version_id": str(version.pk), "weight": 1.0}]
    assert len(event.details["after"]["routes"]) == 2
    assert client.post(URL, {"name": "churn-api", "routes": routes}, format="json").status_code == 409
    assert client.patch(URL + "churn-api/", {"name": "renamed"}, format="json").json()["error"]["code"] == (
        "unknown_field"
    )


def test_keys_are_shown_once_stored_hashed_and_revocable(members, api_as, team, version, deploy):
    deploy(team, "churn-api", {version: 1})
    assert api_as(members["editor"]).post(URL + "churn-api/keys/", {"name": "x"}, format="json").status_code == 403
    admin = api_as(members["admin"])
    created = admin.post(URL + "churn-api/keys/", {"name": "checkout"}, format="json").json()
    raw = created["key"]
    assert raw.startswith("cdk_") and created["scopes"] == ["serve:predict"]
    stored = DeploymentKey.all_teams.get()
    assert raw not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
    listed = admin.get(URL + "churn-api/keys/").json()["results"]
    assert "key" not in listed[0] and listed[0]["prefix"] == stored.prefix
    assert admin.post(URL + "churn-api/keys/", {"name": " "}, format="json").json()["error"]["code"] == ("invalid_name")
    revoked = admin.delete(URL + f"churn-api/keys/{stored.pk}/").json()
    assert revoked["revoked_at"] is not None
    assert AuditEvent.all_teams.filter(verb__startswith="deployment.key.").count() == 2


def test_routes_take_the_serve_credential_and_answer_304_when_unchanged(
    api, serve_api, members, api_as, team, version, deploy
):
    deployment = deploy(team, "churn-api", {version: 1})
    raw = mint_key(team, deployment)
    assert api.get("/api/v1/serving/routes/").status_code == 401
    assert api_as(members["owner"]).get("/api/v1/serving/routes/").status_code in (401, 403)
    response = serve_api.get("/api/v1/serving/routes/")
    assert response.status_code == 200
    (manifest,) = response.json()["deployments"]
    assert manifest["team"] == "acme" and manifest["deployment"] == "churn-api"
    assert manifest["routes"] == [{"version_id": str(version.pk), "weight": 1.0}]
    model = manifest["models"][str(version.pk)]
    assert model["files"] == version.files and model["signature"] == version.signature
    import hashlib

    assert manifest["keys"] == [hashlib.sha256(raw.encode()).hexdigest()]
    etag = response.headers["ETag"]
    assert serve_api.get("/api/v1/serving/routes/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    api_as(members["admin"]).patch(URL + "churn-api/", {"sample_rate": 0.5}, format="json")
    assert serve_api.get("/api/v1/serving/routes/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_health_and_prediction_reports_reach_the_deployment(serve_api, members, api_as, team, version, deploy):
    deployment = deploy(team, "churn-api", {version: 1})
    report = {"reporter": "t", "versions": [{"deployment_id": deployment.pk, "version_id": str(version.pk),
                                             "state": "failed", "error": "boom"}]}  # fmt: skip
    assert serve_api.post("/api/v1/serving/health/", report, format="json").json() == {"written": 1}
    body = api_as(members["viewer"]).get(URL + "churn-api/").json()
    assert body["state"] == "failed" and body["routes"][0]["error"] == "boom"

    import time

    now = time.time()
    stats = {"kind": "stats", "deployment_id": deployment.pk, "version_id": str(version.pk), "minute": now,
             "requests": 10, "rows": 12, "errors": 1, "latency_hist": [0, 0, 5, 5]}  # fmt: skip
    sample = {"kind": "sample", "deployment_id": deployment.pk, "version_id": str(version.pk), "at": now,
              "rows": [{"age": 30.0, "income": 40.0, "tenure": 2.0}] * 50}  # fmt: skip
    assert serve_api.post(
        "/api/v1/serving/predictions/", {"records": [stats, stats, sample]}, format="json"
    ).json() == {
        "stats": 1,
        "samples": 50,
    }
    row = PredictionMinute.all_teams.get()
    assert (row.requests, row.rows, row.errors, row.latency_hist) == (20, 24, 2, [0, 0, 10, 10])
    traffic = api_as(members["viewer"]).get(URL + "churn-api/traffic/").json()
    assert traffic["requests"] == 20 and traffic["errors"] == 2 and traffic["p99_ms"] is not None
    drift = api_as(members["viewer"]).get(URL + "churn-api/drift/").json()["versions"][0]
    assert drift["samples"] == 50 and drift["has_profile"]
    # Every sampled row is the same point: the distribution moved far from the reference.
    assert set(drift["warnings"]) == {"age", "income", "tenure"}

    bad = {"records": [{"kind": "stats", "deployment_id": deployment.pk, "minute": now, "requests": -1}]}
    response = serve_api.post("/api/v1/serving/predictions/", bad, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_report"
    assert PredictionMinute.all_teams.get().requests == 20  # nothing half-written


def test_list_and_page_queries_do_not_grow_with_deployments(members, api_as, team, version, deploy):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_as(members["viewer"])

    def count(path: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200
        return len(ctx.captured_queries)

    deploy(team, "d0", {version: 1})
    one = (count(URL), count("/t/acme/deployments/"))
    for i in range(1, 5):
        deploy(team, f"d{i}", {version: 1})
    assert (count(URL), count("/t/acme/deployments/")) == one


def test_list_query_count_is_pinned(members, api_as, team, version, deploy, django_assert_num_queries):
    for i in range(3):
        deploy(team, f"d{i}", {version: 1})
    client = api_as(members["viewer"])
    client.get(URL)  # session warm-up
    with django_assert_num_queries(7):
        assert client.get(URL).status_code == 200


def test_stats_older_than_the_retention_are_dropped(serve_api, team, version, deploy, settings):
    import time

    settings.CELLAR_SERVING_STATS_DAYS = 1
    deployment = deploy(team, "churn-api", {version: 1})

    def stats(at: float) -> dict:
        return {"kind": "stats", "deployment_id": deployment.pk, "version_id": str(version.pk), "minute": at,
                "requests": 1, "rows": 1, "errors": 0, "latency_hist": [1]}  # fmt: skip

    from datetime import UTC, datetime

    old = datetime.fromtimestamp(time.time() - 3 * 86400, tz=UTC)
    PredictionMinute.all_teams.create(team=team, deployment=deployment, version_id=str(version.pk), minute=old)
    serve_api.post("/api/v1/serving/predictions/", {"records": [stats(time.time())]}, format="json")
    assert PredictionMinute.all_teams.count() == 1 and PredictionMinute.all_teams.get().minute.timestamp() > (
        time.time() - 120
    )
