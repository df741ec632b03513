"""Who calls the MLflow API: an API token (MLFLOW_TRACKING_TOKEN, or Basic auth with the
token as password) or, for reads only, a signed-in browser session."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from django.http import HttpRequest

from cellar_server.core.task_tokens import task_grant
from cellar_server.teams.authentication import TokenRejected, token_from_secret
from cellar_server.teams.models import ApiToken, Team
from cellar_server.teams.selectors import team_access, team_access_for_token
from cellar_server.tracking.errors import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, UNAUTHENTICATED, TrackingError


@dataclass(frozen=True)
class Caller:
    user: object
    token: ApiToken | None
    team: Team
    scopes: frozenset[str]
    # Set for a pipeline step's task token: the one tracking run it may read and log to.
    run_uuid: str | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            via = "token" if self.token is not None else "role"
            raise TrackingError(PERMISSION_DENIED, f"This call needs the '{scope}' scope, which your {via} lacks.")


def _secret_from_header(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            _, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return ""
        return password
    return None


def authenticate(request: HttpRequest, team_slug: str) -> Caller:
    secret = _secret_from_header(request)
    token = None
    if secret is not None:
        try:
            token = token_from_secret(secret)
        except TokenRejected as exc:
            step_caller = _task_caller(secret, team_slug)
            if step_caller is not None:
                return step_caller
            raise TrackingError(UNAUTHENTICATED, str(exc.detail)) from None
        user = token.user
    elif request.user.is_authenticated and request.method in ("GET", "HEAD"):
        user = request.user  # the dashboards' own reads; writes need a token (no CSRF here)
    else:
        raise TrackingError(
            UNAUTHENTICATED,
            "Set MLFLOW_TRACKING_TOKEN to a Cellar API token (mint one in your team's Tokens page).",
        )
    if token is not None:
        access = team_access_for_token(token=token, slug=team_slug)
    else:
        access = team_access(user=user, slug=team_slug)
    if access is None:
        raise TrackingError(RESOURCE_DOES_NOT_EXIST, f"No team '{team_slug}' for this user.")
    scopes = access.scopes
    if token is not None:
        if token.team_id != access.team.id:
            raise TrackingError(PERMISSION_DENIED, f"This token belongs to another team; mint one in '{team_slug}'.")
        scopes = scopes & frozenset(token.scopes)
    return Caller(user=user, token=token, team=access.team, scopes=scopes)


# What a step's own code may call with its task token: read and log to its run.
TASK_SCOPES = frozenset({"experiments:read", "experiments:write"})


def _task_caller(secret: str, team_slug: str) -> Caller | None:
    grant = task_grant(secret)
    if grant is None:
        return None
    team = Team.objects.filter(pk=grant.team_id).first()
    if team is None or team.slug != team_slug:
        raise TrackingError(RESOURCE_DOES_NOT_EXIST, f"No team '{team_slug}' for this task token.")
    return Caller(user=None, token=None, team=team, scopes=TASK_SCOPES, run_uuid=grant.tracking_run)


def require_run(caller: Caller, run_id: str | None) -> None:
    """A task token reaches its own run only; any other run answers as missing."""
    if caller.run_uuid is not None and run_id != caller.run_uuid:
        raise TrackingError(RESOURCE_DOES_NOT_EXIST, f"Run '{run_id}' not found.")
