"""Cellar's REST API for the registry: /api/v1/teams/<team>/models/… per role and across teams."""

from __future__ import annotations

import pytest

from cellar_server.registry import services
from cellar_server.registry.models import ModelVersion

pytestmark = pytest.mark.django_db

URL = "/api/v1/teams/acme/models/"


@pytest.fixture
def churn(team, actor, logged_run):
    model = services.model_create(team=team, actor=actor, name="churn")
    for auc in (0.7, 0.8):
        services.version_create(
            team=team, actor=actor, model=model, source=f"runs:/{logged_run(metrics={'auc': auc}).run_uuid}/model"
        )
    services.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=1)
    return model


@pytest.mark.parametrize("role", ["viewer", "editor", "admin", "owner"])
def test_every_member_reads(api_as, members, churn, role):
    client = api_as(members[role])
    body = client.get(URL).json()
    assert [m["name"] for m in body["results"]] == ["churn"]
    assert body["results"][0]["aliases"] == {"champion": 1} and body["results"][0]["version_count"] == 2
    versions = client.get(URL + "churn/versions/").json()["results"]
    assert [(v["version"], v["aliases"]) for v in versions] == [(2, []), (1, ["champion"])]
    detail = client.get(URL + "churn/versions/1/").json()
    assert detail["flavor"] == "sklearn" and "MLmodel" in detail["files"] and detail["metrics"] == {"auc": 0.7}
    assert client.get(URL + "churn/aliases/").json()["aliases"] == {"champion": 1}


@pytest.mark.parametrize("role, status", [("viewer", 403), ("editor", 403), ("admin", 200), ("owner", 200)])
def test_moving_an_alias_needs_promote(api_as, members, churn, role, status):
    response = api_as(members[role]).put(
        URL + "churn/aliases/champion/", {"version": 2, "reason": "better"}, format="json"
    )
    assert response.status_code == status, response.json()
    if status == 403:
        assert response.json()["error"]["code"] == "missing_scope"


def test_alias_errors(api_as, members, churn):
    client = api_as(members["admin"])
    assert client.put(URL + "churn/aliases/champion/", {"version": 9}, format="json").json()["error"]["code"] == (
        "not_found"
    )
    response = client.put(URL + "churn/aliases/latest/", {"version": 1}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    response = client.put(URL + "churn/aliases/champion/", {"version": "x"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert client.delete(URL + "churn/aliases/champion/").status_code == 204
    assert client.delete(URL + "churn/aliases/champion/").status_code == 404


def test_other_team_gets_404(api_as, outsider, churn):
    client = api_as(outsider)
    for path in ("", "churn/", "churn/versions/", "churn/versions/1/", "churn/aliases/"):
        assert client.get(URL + path).status_code == 404, path
    assert client.get(URL + "-/resolve/", {"ref": "churn@champion"}).status_code == 404


def test_resolve_by_alias_version_and_latest(api_as, members, churn):
    client = api_as(members["viewer"])
    assert client.get(URL + "-/resolve/", {"ref": "churn@champion"}).json()["version"] == 1
    assert client.get(URL + "-/resolve/", {"ref": "churn/2"}).json()["version"] == 2
    latest = client.get(URL + "-/resolve/", {"ref": "churn"}).json()
    assert latest["version"] == 2 and latest["flavor"] == "sklearn" and set(latest["files"]) >= {"MLmodel"}
    assert client.get(URL + "-/resolve/", {"ref": "churn@nope"}).status_code == 404
    assert client.get(URL + "-/resolve/", {"ref": "nope"}).status_code == 404


@pytest.mark.parametrize(
    "role, alias, status",
    [
        ("viewer", "", 403),
        ("editor", "", 201),
        ("editor", "champion", 403),
        ("admin", "champion", 201),
    ],
)
def test_register_per_role(token_client, team, members, logged_run, role, alias, status):
    client, _ = token_client(team, members[role])
    run = logged_run(metrics={"auc": 0.9})
    body = {"name": "churn", "source": f"runs:/{run.run_uuid}/model", "metrics": {"f1": 0.5}}
    if alias:
        body["alias"] = alias
    response = client.post(URL + "-/register/", body, format="json")
    assert response.status_code == status, response.json()
    assert ModelVersion.all_teams.filter(team=team).exists() is (status == 201)
    if status == 201:
        out = response.json()
        assert out["version"]["metrics"] == {"auc": 0.9, "f1": 0.5} and out["alias_moved"] is bool(alias)


def test_register_refuses_bad_input_without_records(token_client, team, members, logged_run):
    client, _ = token_client(team, members["admin"])
    run = logged_run()
    cases = [
        ({"name": "churn"}, "invalid"),
        ({"name": "churn", "source": "s3://x/y"}, "invalid"),
        ({"name": "churn", "source": f"runs:/{run.run_uuid}/nothing"}, "no_model_files"),
        ({"name": "churn", "source": f"runs:/{run.run_uuid}/model", "alias": "v1"}, "invalid"),
        ({"name": "churn", "source": f"runs:/{run.run_uuid}/model", "gate": "auc"}, "invalid"),
        ({"name": "churn", "source": f"runs:/{run.run_uuid}/model", "metrics": {"auc": "high"}}, "invalid"),
        ({"name": "a/b", "source": f"runs:/{run.run_uuid}/model"}, "invalid"),
    ]
    for body, code in cases:
        response = client.post(URL + "-/register/", body, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == code, (body, response.json())
    assert not ModelVersion.all_teams.filter(team=team).exists()


def test_register_needs_authentication(api):
    assert api.post(URL + "-/register/", {}, format="json").status_code == 401


def test_model_list_query_count_is_flat(api_as, members, team, actor, django_assert_max_num_queries):
    for i in range(8):
        services.model_create(team=team, actor=actor, name=f"m{i}")
    client = api_as(members["viewer"])
    with django_assert_max_num_queries(12):
        assert len(client.get(URL).json()["results"]) == 8


def test_retention_keeps_version_blobs_and_source_runs(team, churn):
    from cellar_server.core import blob_refs

    version = ModelVersion.all_teams.get(team=team, model=churn, version=1)
    assert set(version.files.values()) <= blob_refs.live_hashes(team)
    assert version.run_uuid in blob_refs.kept_runs(team)
