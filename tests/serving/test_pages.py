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


def test_each_route_links_to_its_version_page(client, members, team, version, deploy):
    deploy(team, "churn-api", {version: 1})
    body = _client(client, members["viewer"]).get("/t/acme/deployments/churn-api/").content.decode()
    assert f'href="/t/acme/models/churn/versions/{version.version}/"' in body


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


def test_drift_rows_sort_by_psi_then_natural_name_and_fold_the_stable_tail():
    from cellar_server.serving.views import drift_rows

    def f(name, psi, threshold=0.2, error=""):
        return {"feature": name, "psi": psi, "warning": psi is not None and psi > threshold, "error": error}

    features = [f(f"p{i}", 0.01) for i in range(1, 13)] + [f("p7b", 0.5), f("p30", 0.9), f("p4x", None, error="bad")]
    features[9]["psi"] = 0.05  # p10: the highest stable one
    (version,) = drift_rows([{"version_id": "7", "features": features}], top=3)
    shown = [row["feature"] for row in version["shown"]]
    assert shown == ["p30", "p7b", "p10", "p1", "p2", "p4x"]  # warnings, top stable (p1 < p2 in a tie), errors
    assert [row["feature"] for row in version["folded"]] == ["p3", "p4", "p5", "p6", "p7", "p8", "p9", "p11", "p12"]
    assert version["warning_summary"] == "p30, p7b"
    many = [f(f"w{i}", 1.0 - i / 100) for i in range(8)]
    assert drift_rows([{"features": many}], top=3)[0]["warning_summary"] == "w0, w1, w2 and 5 more"


def test_the_drift_table_of_a_wide_model_lists_warnings_first_and_folds_the_stable_rest(
    client, members, team, register, deploy
):
    import numpy as np
    import pandas as pd

    from cellar_server.serving import services

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({f"p{i}": rng.normal(0, 1, 400) for i in range(1, 21)})
    version = register(team, "wide", constant_model(1.0, frame), frame)
    deployment = deploy(team, "wide-api", {version: 1})
    rows = [{f"p{i}": float(rng.normal(5 if i in (3, 12) else 0, 1)) for i in range(1, 21)} for _ in range(300)]
    services.predictions_ingest(
        records=[{"kind": "sample", "deployment_id": deployment.pk, "version_id": str(version.pk), "rows": rows}]
    )
    body = _client(client, members["viewer"]).get("/t/acme/deployments/wide-api/").content.decode()
    table = body[body.index(f'data-testid="drift-{version.pk}"') :]
    assert table.index("<td>p3</td>") < table.index("<td>p1</td>") and table.index("<td>p12</td>") < table.index(
        "<td>p1</td>"
    )
    assert "13 more features, all stable" in body  # 20 - 2 drifted - 5 highest stable ones shown
    assert "drift: p3, p12</span>" in body and "20 features, 2 drifted" in body


def test_drift_ties_as_displayed_go_by_natural_name():
    from cellar_server.serving.views import drift_rows

    rows = [{"feature": n, "psi": p, "warning": False, "error": ""} for n, p in [("p60", 0.1181), ("p29", 0.1179)]]
    assert [r["feature"] for r in drift_rows([{"features": rows}])[0]["shown"]] == ["p29", "p60"]  # both "0.118"


def test_the_list_names_each_route_by_its_model_version(client, members, team, version, deploy):
    deploy(team, "churn-api", {version: 1})
    body = _client(client, members["viewer"]).get("/t/acme/deployments/").content.decode()
    assert f'title="version id {version.pk}">churn v1 · 100%</span>' in body


def test_the_routes_table_shows_each_versions_aliases(client, members, team, version, deploy):
    from cellar_server.registry import services as registry
    from cellar_server.teams.actors import Actor

    deploy(team, "churn-api", {version: 1})
    page = _client(client, members["viewer"])
    assert 'data-testid="route-alias"' not in page.get("/t/acme/deployments/churn-api/").content.decode()
    registry.model_alias_set(
        team=team, actor=Actor(user=members["admin"]), model=version.model, alias="champion", version=version.version
    )
    body = page.get("/t/acme/deployments/churn-api/").content.decode()
    assert '<span class="alias-chip" data-testid="route-alias">champion</span>' in body
