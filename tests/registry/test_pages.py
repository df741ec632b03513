"""Registry pages with Django's client: content, the alias form per role, other teams, pinned queries."""

from __future__ import annotations

import pytest

from cellar.models import reference_profile
from cellar_server.registry import guards, selectors, services
from cellar_server.registry.register import version_register

pytestmark = pytest.mark.django_db


@pytest.fixture
def churn(team, actor, logged_run, training_data):
    profile = reference_profile(training_data)
    for auc in (0.7, 0.8, 0.75):
        run = logged_run(metrics={"auc": auc, "f1": auc - 0.1}, params={"C": auc})
        version_register(
            team=team,
            actor=actor,
            name="churn",
            source=f"runs:/{run.run_uuid}/model",
            alias="champion",
            gate="auc",
            profile=profile,
        )
    return selectors.model_for_name(team=team, name="churn")


def test_empty_list_says_what_to_do(client, members):
    client.force_login(members["viewer"])
    body = client.get("/t/acme/models/").content.decode()
    assert "No models yet" in body and "cellar.register_model" in body


def test_list_model_and_version_pages(client, members, churn):
    client.force_login(members["viewer"])
    body = client.get("/t/acme/models/").content.decode()
    assert "churn" in body and "champion · v2" in body
    body = client.get("/t/acme/models/churn/").content.decode()
    assert 'id="metrics-data"' in body and "v3" in body and 'data-testid="alias-form"' not in body
    body = client.get("/t/acme/models/churn/versions/2/").content.decode()
    assert "Lineage" in body and "champion" in body and "train-1" in body and "mean" in body
    body = client.get("/t/acme/models/churn/compare/?from=1&to=2").content.decode()
    assert "auc" in body and "0.1000" in body


def test_admin_moves_the_alias_from_the_page(client, members, team, churn):
    client.force_login(members["admin"])
    assert 'data-testid="alias-form"' in client.get("/t/acme/models/churn/").content.decode()
    response = client.post("/t/acme/models/churn/aliases/", {"alias": "champion", "version": "3", "reason": "ok"})
    assert response.status_code == 302
    assert selectors.alias_map(team=team, model=churn) == {"champion": 3}
    guards.register_alias_guard(lambda *a: "A/B test running")
    response = client.post("/t/acme/models/churn/aliases/", {"alias": "champion", "version": "1"}, follow=True)
    assert "A/B test running" in response.content.decode()
    assert selectors.alias_map(team=team, model=churn) == {"champion": 3}


def test_viewer_cannot_post_alias(client, members, team, churn):
    client.force_login(members["viewer"])
    assert client.post("/t/acme/models/churn/aliases/", {"alias": "champion", "version": "3"}).status_code == 403


@pytest.mark.parametrize("path", ["/t/acme/models/", "/t/acme/models/churn/", "/t/acme/models/churn/versions/1/"])
def test_other_team_gets_404(client, outsider, churn, path):
    client.force_login(outsider)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "path", ["/t/acme/models/nope/", "/t/acme/models/churn/versions/9/", "/t/acme/models/churn/compare/?from=1&to=x"]
)
def test_missing_things_are_404(client, members, churn, path):
    client.force_login(members["viewer"])
    assert client.get(path).status_code == 404


def test_model_page_query_count_is_flat(client, members, team, actor, churn, logged_run, django_assert_max_num_queries):
    client.force_login(members["viewer"])
    for _ in range(5):
        services.version_create(team=team, actor=actor, model=churn, source=f"runs:/{logged_run().run_uuid}/model")
    with django_assert_max_num_queries(15):
        assert client.get("/t/acme/models/churn/").status_code == 200


def test_tracking_run_page_links_to_the_registered_version(client, members, churn):
    client.force_login(members["viewer"])
    version = selectors.model_version_get(team=churn.team, name="churn", version=2)
    body = client.get(f"/t/acme/runs/{version.run_uuid}/").content.decode()
    assert 'data-testid="registered-as"' in body and "/t/acme/models/churn/versions/2/" in body


def test_models_list_query_count_is_flat(client, members, team, actor, django_assert_max_num_queries):
    for i in range(8):
        services.model_create(team=team, actor=actor, name=f"m{i}")
    client.force_login(members["viewer"])
    with django_assert_max_num_queries(10):
        assert client.get("/t/acme/models/").status_code == 200
