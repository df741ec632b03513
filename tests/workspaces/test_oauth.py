"""Cellar as JupyterHub's OpenID Connect provider: the client record, the code flow with PKCE,
the claims the hub maps to its users and groups (team slugs), and group changes reaching it."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command
from django.test import Client
from jwcrypto import jwk, jwt
from oauth2_provider.models import get_application_model

from cellar_server.teams.models import Membership
from cellar_server.workspaces import services
from tests.factories import PASSWORD, TeamFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db
REDIRECT = "http://hub.test/hub/oauth_callback"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def sign_in_through_hub(client: Client, hub_client, scope: str = "openid profile email groups") -> dict:
    """What the hub's GenericOAuthenticator does: authorize (PKCE) -> code -> token endpoint."""
    client_id, secret, redirect = hub_client
    verifier, challenge = _pkce()
    response = client.get(
        "/o/authorize/",
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": scope,
            "state": "xyz",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302, response.content[:300]
    location = urlparse(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    token = Client().post(
        "/o/token/",
        {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect,
            "client_id": client_id,
            "client_secret": secret,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.content[:300]
    return token.json()


def userinfo(access_token: str) -> dict:
    response = Client().get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert response.status_code == 200, response.content[:300]
    return response.json()


@pytest.fixture
def bob():
    user = UserFactory(username="bob", email="bob@example.com")
    add_member(TeamFactory(slug="team-ml"), user, "editor")
    add_member(TeamFactory(slug="team-ops"), user, "admin")
    return user


def test_hub_client_secret_is_hashed_in_the_database_and_plaintext_only_in_a_private_file(hub_client, hub_home):
    client_id, secret, _ = hub_client
    app = get_application_model().objects.get(client_id=client_id)
    assert app.client_secret != secret  # django-oauth-toolkit hashed it on save
    path = hub_home / "hub" / "oauth-client.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["redirect_uri"] == REDIRECT


def test_hub_client_setup_is_idempotent_and_a_lost_file_gets_a_new_secret(hub_client, hub_home):
    client_id, secret, _ = hub_client
    again = services.hub_oauth_client_ensure(redirect_uri=REDIRECT)
    assert (again.client_id, again.created) == (client_id, False)
    assert json.loads((hub_home / "hub" / "oauth-client.json").read_text())["client_secret"] == secret
    (hub_home / "hub" / "oauth-client.json").unlink()
    services.hub_oauth_client_ensure(redirect_uri=REDIRECT)
    rotated = json.loads((hub_home / "hub" / "oauth-client.json").read_text())
    assert rotated["client_id"] == client_id and rotated["client_secret"] != secret
    assert get_application_model().objects.filter(name="jupyterhub").count() == 1


def test_cellar_init_sets_up_the_hub_client(db, hub_home):
    call_command("cellar_init", stdout=open("/dev/null", "w"))
    assert (hub_home / "hub" / "oauth-client.json").exists()
    assert (hub_home / "hub" / "service-token").exists()
    assert get_application_model().objects.filter(name="jupyterhub").exists()


def test_code_flow_with_pkce_gives_the_hub_the_username_email_and_team_groups(hub_client, bob):
    browser = Client()
    browser.login(username="bob", password=PASSWORD)
    tokens = sign_in_through_hub(browser, hub_client)
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)
    claims = userinfo(tokens["access_token"])
    assert claims["preferred_username"] == "bob"
    assert claims["email"] == "bob@example.com"
    assert claims["groups"] == ["team-ml", "team-ops"]
    assert claims["cellar_roles"] == {"team-ml": "editor", "team-ops": "admin"}


def test_id_token_is_rs256_signed_with_the_published_key(hub_client, bob):
    browser = Client()
    browser.login(username="bob", password=PASSWORD)
    tokens = sign_in_through_hub(browser, hub_client)
    keys = jwk.JWKSet.from_json(Client().get("/o/.well-known/jwks.json").content)
    token = jwt.JWT(jwt=tokens["id_token"], key=keys, algs=["RS256"])
    claims = json.loads(token.claims)
    assert claims["aud"] == hub_client[0]
    assert claims["groups"] == ["team-ml", "team-ops"]
    discovery = Client().get("/o/.well-known/openid-configuration").json()
    assert discovery["userinfo_endpoint"].endswith("/o/userinfo/")


def test_groups_claim_needs_the_groups_scope(hub_client, bob):
    browser = Client()
    browser.login(username="bob", password=PASSWORD)
    claims = userinfo(sign_in_through_hub(browser, hub_client, scope="openid profile")["access_token"])
    assert claims["preferred_username"] == "bob"
    assert "groups" not in claims and "cellar_roles" not in claims


def test_group_changes_in_cellar_reach_the_next_sign_in(hub_client, bob):
    browser = Client()
    browser.login(username="bob", password=PASSWORD)
    Membership.all_teams.filter(user=bob, team__slug="team-ops").delete()
    add_member(TeamFactory(slug="team-new"), bob, "viewer")
    claims = userinfo(sign_in_through_hub(browser, hub_client)["access_token"])
    assert claims["groups"] == ["team-ml", "team-new"]


def test_signed_out_users_are_sent_to_cellar_sign_in_first(hub_client):
    client_id, _, redirect = hub_client
    _, challenge = _pkce()
    response = Client().get(
        "/o/authorize/",
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_authorize_refuses_a_redirect_uri_that_is_not_the_hubs(hub_client, bob):
    client_id, _, _ = hub_client
    browser = Client()
    browser.login(username="bob", password=PASSWORD)
    _, challenge = _pkce()
    response = browser.get(
        "/o/authorize/",
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": "http://evil.test/cb",
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 400  # never redirected to the attacker


def test_token_endpoint_refuses_a_wrong_secret(hub_client, bob):
    client_id, _, redirect = hub_client
    response = Client().post(
        "/o/token/",
        {
            "grant_type": "authorization_code",
            "code": "nope",
            "redirect_uri": redirect,
            "client_id": client_id,
            "client_secret": "wrong",
            "code_verifier": "x" * 43,
        },
    )
    assert response.status_code == 401


def test_an_unwritable_cellar_home_does_not_stop_settings_from_loading(tmp_path, monkeypatch):
    from cellar_server.workspaces import keys

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CELLAR_HOME", str(blocker / "home"))  # cannot be created, even by root
    monkeypatch.delenv("CELLAR_OIDC_PRIVATE_KEY", raising=False)
    assert keys.oidc_private_key().startswith("-----BEGIN PRIVATE KEY-----")


def test_the_key_variable_wins(monkeypatch):
    from cellar_server.workspaces import keys

    monkeypatch.setenv("CELLAR_OIDC_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\\nx")
    assert keys.oidc_private_key().endswith("x")
