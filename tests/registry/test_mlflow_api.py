"""The MLflow registry endpoints over HTTP (Django's client): roles, other teams, filters, bad input."""

from __future__ import annotations

import json

import pytest

from cellar_server.registry import services
from tests.factories import mint_token

pytestmark = pytest.mark.django_db

BASE = "/t/acme/mlflow/api/2.0/mlflow/"


@pytest.fixture
def call(client, team, members):
    tokens = {role: mint_token(team, user)[1] for role, user in members.items()}

    def do(method: str, path: str, role: str = "owner", raw: str | None = None, **fields):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw or tokens[role]}"}
        if method == "GET":
            response = client.get(BASE + path, fields, **headers)
        else:
            response = client.generic(method, BASE + path, json.dumps(fields), "application/json", **headers)
        return response.status_code, response.json()

    return do


@pytest.fixture
def churn(team, actor, logged_run):
    model = services.model_create(team=team, actor=actor, name="churn", tags={"domain": "risk"})
    services.model_create(team=team, actor=actor, name="fraud")
    for auc in (0.7, 0.8):
        services.version_create(
            team=team, actor=actor, model=model, source=f"runs:/{logged_run(metrics={'auc': auc}).run_uuid}/model"
        )
    return model


@pytest.mark.parametrize(
    "flt, names",
    [
        ("name LIKE 'ch%'", ["churn"]),
        ("name ILIKE 'CH%'", ["churn"]),
        ("name = 'fraud'", ["fraud"]),
        ("name != 'fraud'", ["churn"]),
        ("name IN ('fraud', 'churn')", ["churn", "fraud"]),
        ("tags.domain = 'risk'", ["churn"]),
        ("tags.domain != 'risk'", ["fraud"]),
        ("name LIKE 'ch%' AND tag.`mlflow.prompt.is_prompt` != 'true'", ["churn"]),
        ("tags.domain LIKE 'ri%'", ["churn"]),
        ("", ["churn", "fraud"]),
    ],
)
def test_search_registered_models(call, churn, flt, names):
    status, body = call("GET", "registered-models/search", filter=flt)
    assert status == 200, body
    assert [m["name"] for m in body.get("registered_models", [])] == names


def test_search_versions_and_pagination(call, churn):
    status, body = call("GET", "model-versions/search", filter="name = 'churn' AND version_number > 1")
    assert status == 200 and [v["version"] for v in body["model_versions"]] == ["2"]
    status, body = call("GET", "registered-models/search", max_results=1)
    assert [m["name"] for m in body["registered_models"]] == ["churn"] and body["next_page_token"]
    status, body = call("GET", "registered-models/search", max_results=1, page_token=body["next_page_token"])
    assert [m["name"] for m in body["registered_models"]] == ["fraud"] and "next_page_token" not in body


@pytest.mark.parametrize(
    "role, method, path, fields, status",
    [
        ("viewer", "GET", "registered-models/get", {"name": "churn"}, 200),
        ("viewer", "POST", "registered-models/create", {"name": "x"}, 403),
        ("editor", "POST", "registered-models/create", {"name": "x"}, 200),
        ("editor", "POST", "registered-models/alias", {"name": "churn", "alias": "champion", "version": "1"}, 403),
        ("admin", "POST", "registered-models/alias", {"name": "churn", "alias": "champion", "version": "1"}, 200),
        (
            "editor",
            "POST",
            "model-versions/transition-stage",
            {"name": "churn", "version": "1", "stage": "Production", "archive_existing_versions": False},
            403,
        ),
        (
            "admin",
            "POST",
            "model-versions/transition-stage",
            {"name": "churn", "version": "1", "stage": "Production", "archive_existing_versions": False},
            200,
        ),
        ("editor", "DELETE", "registered-models/delete", {"name": "churn"}, 403),
        ("owner", "DELETE", "registered-models/delete", {"name": "churn"}, 200),
    ],
)
def test_roles(call, churn, role, method, path, fields, status):
    got, body = call(method, path, role=role, **fields)
    assert got == status, body
    if status == 403:
        assert body["error_code"] == "PERMISSION_DENIED"


def test_another_teams_token_sees_nothing(call, churn, other_team, outsider):
    _, raw = mint_token(other_team, outsider)
    status, body = call("GET", "registered-models/get", raw=raw, name="churn")
    assert status == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, body = call("GET", "registered-models/get", name="churn")  # the team's own token still sees it
    assert status == 200


@pytest.mark.parametrize(
    "method, path, fields, status, code",
    [
        ("POST", "registered-models/create", {}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "registered-models/create", {"name": "churn"}, 400, "RESOURCE_ALREADY_EXISTS"),
        ("GET", "model-versions/get", {"name": "churn", "version": "x"}, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "model-versions/get", {"name": "churn", "version": "9"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "model-versions/create", {"name": "churn", "source": "file:///etc"}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "model-versions/create", {"name": "nope", "source": "runs:/x"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", "registered-models/search", {"filter": "colour = 'red'"}, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "registered-models/search", {"max_results": "0"}, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "registered-models/search", {"order_by": "colour"}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "registered-models/unknown", {}, 404, "ENDPOINT_NOT_FOUND"),
        (
            "POST",
            "model-versions/transition-stage",
            {"name": "churn", "version": "1", "stage": "Prod"},
            400,
            "INVALID_PARAMETER_VALUE",
        ),
    ],
)
def test_malformed_calls_get_mlflow_error_codes(call, churn, method, path, fields, status, code):
    got, body = call(method, path, **fields)
    assert (got, body["error_code"]) == (status, code), body
    assert body["message"]


def test_a_frozen_alias_answers_409(call, churn):
    from cellar_server.registry import guards

    call("POST", "registered-models/alias", name="churn", alias="champion", version="1")
    guards.register_alias_guard(lambda team, model, alias, version: "A/B test running" if alias == "champion" else None)
    status, body = call("POST", "registered-models/alias", name="churn", alias="champion", version="2")
    assert status == 409 and body["error_code"] == "RESOURCE_CONFLICT" and "A/B test running" in body["message"]
    status, body = call("GET", "registered-models/alias", name="churn", alias="champion")
    assert body["model_version"]["version"] == "1" and body["model_version"]["aliases"] == ["champion"]


def test_malformed_json_is_bad_request(client, team, members):
    _, raw = mint_token(team, members["owner"])
    response = client.post(
        BASE + "registered-models/create", "{not json", "application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 400 and response.json()["error_code"] == "BAD_REQUEST"


def test_search_versions_by_run_and_source(call, churn):
    status, body = call("GET", "model-versions/search", filter="name = 'churn'")
    runs = [v["run_id"] for v in body["model_versions"]]
    flt = f"run_id IN ('{runs[0]}', 'nope')"
    status, body = call("GET", "model-versions/search", filter=flt)
    assert status == 200 and [v["run_id"] for v in body["model_versions"]] == [runs[0]]
    status, body = call("GET", "model-versions/search", filter="source_path LIKE 'runs:/%/model'")
    assert len(body["model_versions"]) == 2
    status, body = call("GET", "model-versions/search", filter="version_number >= 1", order_by=["version_number ASC"])
    assert [v["version"] for v in body["model_versions"]] == ["1", "2"]
