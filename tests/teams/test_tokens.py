"""API tokens: shown once, hashed, scoped, expiring, revocable, bound to one team."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cellar_server.teams import services
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import ApiToken
from cellar_server.teams.tokens import hash_secret
from tests.factories import add_member, mint_token

pytestmark = pytest.mark.django_db


def test_token_is_shown_once_and_stored_hashed(api_as, team, members):
    response = api_as(members["editor"]).post(
        "/api/v1/teams/acme/tokens/", {"name": "ci", "scopes": ["pipelines:run"]}, format="json"
    )
    assert response.status_code == 201
    raw = response.json()["token"]
    stored = ApiToken.all_teams.get(pk=response.json()["id"])
    assert raw.startswith(f"cellar_{stored.prefix}_")
    assert stored.token_hash == hash_secret(raw)
    assert raw not in str(ApiToken.all_teams.filter(pk=stored.pk).values().first())
    listed = api_as(members["editor"]).get("/api/v1/teams/acme/tokens/").json()["results"]
    assert "token" not in listed[0]


def test_default_scopes_are_the_role_scopes(team, members):
    token, _ = mint_token(team, members["viewer"])
    assert "team:read" in token.scopes
    assert "members:write" not in token.scopes


def test_cannot_mint_scopes_beyond_role(api_as, team, members):
    response = api_as(members["editor"]).post(
        "/api/v1/teams/acme/tokens/", {"name": "x", "scopes": ["members:write"]}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_not_allowed"
    assert not ApiToken.all_teams.filter(name="x").exists()


def test_unknown_scope_is_a_400(api_as, members):
    response = api_as(members["owner"]).post(
        "/api/v1/teams/acme/tokens/", {"name": "x", "scopes": ["root:everything"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "scopes" in response.json()["error"]["detail"]


def test_token_scope_limits_what_it_can_do(token_client, team, members):
    client, _ = token_client(team, members["owner"], scopes=["team:read", "members:read"])
    assert client.get("/api/v1/teams/acme/members/").status_code == 200
    response = client.post("/api/v1/teams/acme/invitations/", {"role": "viewer"}, format="json")
    assert response.status_code == 403
    body = response.json()["error"]
    assert body["code"] == "missing_scope"
    assert "members:write" in body["message"] and "token" in body["message"]


def test_demoting_a_member_narrows_their_tokens(token_client, team, members):
    client, _ = token_client(team, members["admin"], scopes=["members:write", "members:read"])
    assert client.post("/api/v1/teams/acme/invitations/", {"role": "viewer"}, format="json").status_code == 201
    services.membership_role_change(
        actor=Actor(user=members["owner"]), team=team, user_id=members["admin"].pk, role="viewer"
    )
    response = client.post("/api/v1/teams/acme/invitations/", {"role": "viewer"}, format="json")
    assert response.status_code == 403


def test_removed_members_tokens_are_revoked(token_client, team, members):
    client, token = token_client(team, members["editor"])
    services.membership_remove(actor=Actor(user=members["owner"]), team=team, user_id=members["editor"].pk)
    response = client.get("/api/v1/teams/acme/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"


def test_expired_token_is_refused(token_client, team, members):
    client, token = token_client(team, members["editor"], expires_in_days=1)
    ApiToken.all_teams.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/api/v1/teams/acme/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


def test_revoked_token_is_refused(api_as, token_client, team, members):
    client, token = token_client(team, members["editor"])
    assert api_as(members["editor"]).delete(f"/api/v1/teams/acme/tokens/{token.pk}/").status_code == 204
    response = client.get("/api/v1/teams/acme/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"


@pytest.mark.parametrize(
    "header,code",
    [
        ("Bearer cellar_000000000000_nope", "token_invalid"),
        ("Bearer garbage", "token_invalid"),
        ("Bearer", "token_malformed"),
        ("Bearer a b", "token_malformed"),
    ],
    ids=["unknown", "garbage", "missing", "spaces"],
)
def test_bad_tokens_are_401(api, header, code):
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/api/v1/teams/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_right_prefix_wrong_secret_is_refused(api, team, members):
    token, raw = mint_token(team, members["owner"])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer cellar_{token.prefix}_{'x' * 43}")
    assert api.get("/api/v1/teams/").json()["error"]["code"] == "token_invalid"


def test_token_is_bound_to_its_team(token_client, team, other_team, members):
    add_member(other_team, members["owner"], "owner")
    client, _ = token_client(team, members["owner"])
    response = client.get("/api/v1/teams/rival/members/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "token_wrong_team"
    assert [t["slug"] for t in client.get("/api/v1/teams/").json()["results"]] == ["acme"]


def test_token_cannot_create_teams(token_client, team, members):
    client, _ = token_client(team, members["owner"])
    response = client.post("/api/v1/teams/", {"slug": "new-team"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "session_required"


def test_token_cannot_mint_a_broader_token(token_client, team, members):
    client, _ = token_client(team, members["owner"], scopes=["tokens:write", "team:read"])
    response = client.post("/api/v1/teams/acme/tokens/", {"name": "wider", "scopes": ["members:write"]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_not_allowed"


def test_last_used_is_recorded_at_most_once_a_minute(token_client, team, members):
    client, token = token_client(team, members["viewer"])
    client.get("/api/v1/teams/acme/")
    first = ApiToken.all_teams.get(pk=token.pk).last_used_at
    assert first is not None
    client.get("/api/v1/teams/acme/")
    assert ApiToken.all_teams.get(pk=token.pk).last_used_at == first
    ApiToken.all_teams.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/v1/teams/acme/")
    assert ApiToken.all_teams.get(pk=token.pk).last_used_at > first


@pytest.mark.parametrize("days,ok", [(1, True), (365, True), (0, False), (366, False), (None, True)])
def test_token_expiry_bounds(api_as, members, days, ok):
    response = api_as(members["viewer"]).post(
        "/api/v1/teams/acme/tokens/", {"name": "t", "expires_in_days": days}, format="json"
    )
    assert response.status_code == (201 if ok else 400)
    if ok:
        assert (response.json()["expires_at"] is None) == (days is None)


def test_me_reports_the_token(token_client, team, members):
    client, token = token_client(team, members["viewer"], scopes=["team:read"])
    body = client.get("/api/v1/me/").json()
    assert body["username"] == "viewer-user"
    assert body["token"]["prefix"] == token.prefix
    assert body["token"]["scopes"] == ["team:read"]
