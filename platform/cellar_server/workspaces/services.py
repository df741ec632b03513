"""Writes for workspaces: the hub's OAuth client, servers started and stopped, kernel tokens, promote.

Cellar drives JupyterHub through its REST API (hub.py) and is the source of truth for who a
user is and which teams they are in; the hub never writes back.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import get_application_model

from cellar_server.core.exceptions import ServiceError
from cellar_server.teams import selectors as team_selectors
from cellar_server.teams import services as team_services
from cellar_server.teams.actors import Actor
from cellar_server.teams.roles import scopes_for
from cellar_server.workspaces import keys
from cellar_server.workspaces.hub import HubClient, ServerState

HUB_CLIENT_NAME = "jupyterhub"
# What a notebook kernel may do: track experiments and work with pipelines, as far as the
# user's role in each team allows (a viewer's kernel reads; an admin's may promote).
KERNEL_SCOPES = frozenset(
    {
        "experiments:read",
        "experiments:write",
        "pipelines:read",
        "pipelines:write",
        "pipelines:run",
        "pipelines:promote",
        # What the SDK does from a notebook: read data through the team's connections and secrets
        # (cellar.dataset / connect / secret), register models and move their aliases.
        "data:read",
        "data:write",
        "models:read",
        "models:write",
        "models:promote",
    }
)
KERNEL_TOKEN_NAME = "workspace kernel"
KERNEL_TOKEN_DAYS = 1
# The server extension renews at half-life; a renewal revokes the kernel tokens before the last one,
# so a kernel that read the previous token a moment ago keeps working until it rereads the file.
KERNEL_RENEW_AFTER = timedelta(hours=12)


# --- the hub's OAuth client ---------------------------------------------------------------------


@dataclass(frozen=True)
class HubOAuthClient:
    client_id: str
    redirect_uri: str
    created: bool


@transaction.atomic
def hub_oauth_client_ensure(*, redirect_uri: str | None = None) -> HubOAuthClient:
    """The hub's confidential OAuth client, with its plaintext secret in hub_oauth_file().

    django-oauth-toolkit hashes `client_secret` when the application is saved, so the plaintext
    exists only in that file (mode 0600, read by jupyterhub_config.py). Idempotent: an existing
    client whose file matches is left alone; a lost file gets a new secret.
    """
    Application = get_application_model()
    redirect_uri = redirect_uri or settings.CELLAR_HUB_OAUTH_CALLBACK
    path = keys.hub_oauth_file()
    known: dict[str, Any] = {}
    if path.exists():
        known = json.loads(path.read_text())
    app = Application.objects.filter(name=HUB_CLIENT_NAME).first()
    if app is not None and known.get("client_id") == app.client_id and known.get("client_secret"):
        if app.redirect_uris != redirect_uri:
            app.redirect_uris = redirect_uri
            app.save(update_fields=["redirect_uris"])
            keys.write_hub_oauth_file(json.dumps({**known, "redirect_uri": redirect_uri}, indent=2))
        return HubOAuthClient(app.client_id, redirect_uri, created=False)
    secret = secrets.token_urlsafe(48)
    created = app is None
    if app is None:
        app = Application(name=HUB_CLIENT_NAME)
    app.client_type = Application.CLIENT_CONFIDENTIAL
    app.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
    app.algorithm = Application.RS256_ALGORITHM
    app.redirect_uris = redirect_uri
    app.skip_authorization = True  # first-party: signing in to Cellar is the consent
    app.client_secret = secret  # hashed by save()
    app.save()
    payload = {"client_id": app.client_id, "client_secret": secret, "redirect_uri": redirect_uri}
    keys.write_hub_oauth_file(json.dumps(payload, indent=2))
    return HubOAuthClient(app.client_id, redirect_uri, created=created)


# --- servers ---------------------------------------------------------------------------------------


def profile_validate(profile: str) -> str:
    names = [p["slug"] for p in settings.CELLAR_WORKSPACE_PROFILES]
    if profile not in names:
        raise ServiceError(
            "unknown_profile", f"'{profile[:40]}' is not a workspace profile; use one of {', '.join(names)}."
        )
    return profile


def hub_user_sync(*, user, hub: HubClient | None = None) -> dict:
    """Create the user on the hub if needed and set its groups to the user's teams."""
    hub = hub or HubClient()
    model = hub.user_ensure(user.get_username())
    teams = sorted(team.slug for team, _role in team_selectors.teams_for_user(user=user))
    hub.groups_set(user.get_username(), teams, list(model.get("groups") or []))
    return model


def workspace_start(*, user, profile: str, hub: HubClient | None = None) -> ServerState:
    """Ask the hub to start the user's server; returns at once (the page polls while it spawns)."""
    hub = hub or HubClient()
    profile = profile_validate(profile)
    state = hub.server_state(user.get_username())
    if state.state != "stopped":
        return state
    hub_user_sync(user=user, hub=hub)
    hub.server_start(user.get_username(), profile=profile)
    return hub.server_state(user.get_username())


def workspace_stop(*, user, hub: HubClient | None = None) -> ServerState:
    hub = hub or HubClient()
    if hub.server_state(user.get_username()).state != "stopped":
        hub.server_stop(user.get_username())
    return hub.server_state(user.get_username())


# --- kernel tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelTokens:
    tokens: dict[str, str]  # team slug -> raw API token
    expires_at: datetime
    renew_after: datetime


@transaction.atomic
def kernel_tokens_issue(*, user) -> KernelTokens:
    """Fresh tokens for the user's notebook kernels: one per team, tracking and pipelines scopes only.

    Each carries the kernel scopes the user's role grants in that team (and, like every token,
    is narrowed again at each call by the role the user has then). The kernel tokens older
    than the previous issue are revoked, so at most two live per team.
    """
    actor = Actor(user=user)
    issued: dict[str, str] = {}
    expires_at = timezone.now() + timedelta(days=KERNEL_TOKEN_DAYS)
    for team, role in team_selectors.teams_for_user(user=user):
        scopes = sorted(KERNEL_SCOPES & scopes_for(role))
        if not scopes:
            continue
        previous = [
            t
            for t in team_selectors.api_token_list(team=team, user=user)
            if t.name == KERNEL_TOKEN_NAME and t.status == "active"
        ]
        token, raw = team_services.api_token_create(
            actor=actor,
            team=team,
            name=KERNEL_TOKEN_NAME,
            scopes=scopes,
            expires_in_days=KERNEL_TOKEN_DAYS,
        )
        expires_at = min(expires_at, token.expires_at)
        for old in previous[1:]:  # newest first: keep the one kernels may hold right now
            team_services.api_token_revoke(actor=actor, token=old, can_revoke_others=False)
        issued[team.slug] = raw
    return KernelTokens(tokens=issued, expires_at=expires_at, renew_after=timezone.now() + KERNEL_RENEW_AFTER)
