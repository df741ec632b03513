"""The deployments pages per role and for another team (the browser tests look at them)."""

from __future__ import annotations

import pytest

from cellar_server.serving.models import Deployment, Route
from cellar_server.teams.models import AuditEvent
from tests.serving.conftest import constant_model, training_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(team, register):
    frame, _ = training_data()
    return register(team, "churn", constant_model(1.0, frame), frame)


def _client(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("role, status", [("viewer", 403), ("editor", 403), ("admin", 302), ("owner", 302)])
def test_deploying_from_the_page_takes_admin(client, members, version, role, status):
    response = _client(client, members[role]).post(
        "/t/acme/deployments/new/", {"name": "churn-api", "version_id": str(version.pk)}
    )
    assert response.status_code == status
    assert Deployment.all_teams.filter(name="churn-api").exists() == (status == 302)


def test_changing_routes_from_the_page_is_audited(client, members, team, version, register, deploy):
    frame, _ = training_data()
    second = register(team, "churn", constant_model(2.0, frame), frame)
    deploy(team, "churn-api", {version: 1})
    page = _client(client, members["admin"])
    form = {"version_id": [str(version.pk)], "weight": ["1"], "add_version_id": str(second.pk), "add_weight": "3"}
    assert page.post("/t/acme/deployments/churn-api/routes/", form).status_code == 302
    assert dict(Route.all_teams.values_list("version_id", "weight")) == {str(version.pk): 0.25, str(second.pk): 0.75}
    assert AuditEvent.all_teams.filter(verb="deployment.routes", actor=members["admin"]).exists()
    # Weight 0 removes a route.
    form = {"version_id": [str(version.pk), str(second.pk)], "weight": ["0", "1"]}
    page.post("/t/acme/deployments/churn-api/routes/", form)
    assert dict(Route.all_teams.values_list("version_id", "weight")) == {str(second.pk): 1.0}


def test_viewers_read_and_cannot_change(client, members, team, version, deploy):
    deploy(team, "churn-api", {version: 1})
    page = _client(client, members["viewer"])
    assert page.get("/t/acme/deployments/").status_code == 200
    body = page.get("/t/acme/deployments/churn-api/").content.decode()
    assert "churn-api" in body and "Change routes" not in body and "Create key" not in body
    form = {"version_id": [str(version.pk)], "weight": ["2"]}
    assert page.post("/t/acme/deployments/churn-api/routes/", form).status_code == 403
    assert page.post("/t/acme/deployments/churn-api/keys/", {"name": "x"}).status_code == 403


def test_another_team_gets_404(client, outsider, team, version, deploy):
    deploy(team, "churn-api", {version: 1})
    page = _client(client, outsider)
    assert page.get("/t/acme/deployments/").status_code == 404
    assert page.get("/t/acme/deployments/churn-api/").status_code == 404
    assert page.post("/t/acme/deployments/new/", {"name": "x", "version_id": str(version.pk)}).status_code == 404


def test_new_is_not_a_deployment_name(members, api_as, version):
    response = api_as(members["admin"]).post(
        "/api/v1/teams/acme/deployments/",
        {"name": "new", "routes": [{"version_id": str(version.pk), "weight": 1}]},
        format="json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_name"
