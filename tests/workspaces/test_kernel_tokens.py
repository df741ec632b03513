"""Kernel tokens: one per team, tracking and pipelines scopes narrowed to the role, renewed with
at most two alive per team; they cannot reach another team or do more than their scopes."""

from __future__ import annotations

import pytest

from cellar_server.teams.models import ApiToken
from cellar_server.workspaces import services
from tests.factories import TeamFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol():
    user = UserFactory(username="carol")
    add_member(TeamFactory(slug="ml"), user, "admin")
    add_member(TeamFactory(slug="ops"), user, "viewer")
    return user


def _kernel_tokens(user):
    return ApiToken.all_teams.filter(user=user, name=services.KERNEL_TOKEN_NAME).select_related("team")


def test_one_token_per_team_with_the_kernel_scopes_the_role_grants(carol):
    issued = services.kernel_tokens_issue(user=carol)
    assert sorted(issued.tokens) == ["ml", "ops"]
    scopes = {t.team.slug: set(t.scopes) for t in _kernel_tokens(carol)}
    assert scopes["ml"] == set(services.KERNEL_SCOPES)  # an admin's kernel may promote
    # a viewer's only reads (and no data:read: reading a secret's value needs data:write)
    assert scopes["ops"] == {"experiments:read", "pipelines:read", "data:read", "models:read"}
    assert issued.renew_after < issued.expires_at


def test_renewal_keeps_the_previous_token_alive_and_revokes_older_ones(carol):
    first = services.kernel_tokens_issue(user=carol)
    second = services.kernel_tokens_issue(user=carol)
    third = services.kernel_tokens_issue(user=carol)
    live = {t.prefix for t in _kernel_tokens(carol) if t.team.slug == "ml" and t.status == "active"}
    assert len(live) == 2
    prefixes = [issued.tokens["ml"].split("_")[1] for issued in (first, second, third)]
    assert prefixes[0] not in live and set(prefixes[1:]) == live


def test_a_kernel_token_answers_its_own_team_only(carol, api):
    raw = services.kernel_tokens_issue(user=carol).tokens["ops"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/teams/ops/pipelines/").status_code == 200
    wrong_team = api.get("/api/v1/teams/ml/pipelines/")
    assert wrong_team.status_code == 403 and wrong_team.json()["error"]["code"] == "token_wrong_team"
    other = TeamFactory(slug="elsewhere")
    assert api.get(f"/api/v1/teams/{other.slug}/pipelines/").status_code == 404


def test_a_kernel_token_cannot_manage_the_team(carol, api):
    raw = services.kernel_tokens_issue(user=carol).tokens["ml"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.post("/api/v1/teams/ml/tokens/", {"name": "x"}, format="json")
    assert response.status_code == 403


def test_kernel_token_endpoint_refuses_requests_without_a_hub_token(api):
    assert api.post("/api/v1/workspaces/kernel-tokens/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Bearer cellar_000000000000_nope")
    assert api.post("/api/v1/workspaces/kernel-tokens/").status_code in (401, 403)
