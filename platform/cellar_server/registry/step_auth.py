"""Who calls the registry endpoints a pipeline step uses (register, resolve): a person or a step.

A step authenticates with its task token. It may read models and register versions in its own
team; it may move an alias only if the person who started the pipeline run may (`models:promote`
now), so running a pipeline never grants more than its author holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from cellar_server.core.task_tokens import task_grant
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import ApiToken, Team
from cellar_server.teams.selectors import team_access, team_access_for_token

STEP_SCOPES = frozenset({"models:read", "models:write"})


@dataclass(frozen=True)
class StepGrant:
    team_id: int
    run_id: int  # the pipeline run
    task_id: int
    tracking_run: str


@dataclass(frozen=True)
class RegistryCaller:
    team: Team
    scopes: frozenset[str]
    actor: Actor
    tracking_run: str | None = None  # set for a step: its run is the version's lineage
    task_id: int | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            who = "this pipeline run's author" if self.task_id is not None else "your role or token"
            raise MissingScope(f"This action needs the '{scope}' scope, which {who} does not grant.")


class MissingScope(exceptions.PermissionDenied):
    def __init__(self, message: str):
        super().__init__(detail=message)
        self.cellar_code = "missing_scope"


class StepTokenAuthentication(BaseAuthentication):
    """A running step's task token; API tokens and sessions fall through to the other classes."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        secret = header[1].decode("latin-1")
        if secret.startswith("cellar_"):
            return None
        grant = task_grant(secret)
        if grant is None:
            return None
        return AnonymousUser(), StepGrant(grant.team_id, grant.run_id, grant.task_id, grant.tracking_run)

    def authenticate_header(self, request) -> str:
        return "Bearer"


def _author_scopes(team: Team, pipeline_run_id: int) -> tuple[frozenset[str], object]:
    # The engine's row for the run: who started it (a read of the pipelines app's table).
    from cellar_server.pipelines.models import PipelineRun

    run = PipelineRun.all_teams.select_related("created_by").filter(pk=pipeline_run_id, team=team).first()
    author = run.created_by if run is not None else None
    if author is None:
        return frozenset(), None
    access = team_access(user=author, slug=team.slug)
    return (access.scopes if access is not None else frozenset()), author


def resolve_caller(request, team_slug: str) -> RegistryCaller:
    auth = getattr(request, "auth", None)
    if isinstance(auth, StepGrant):
        team = Team.objects.filter(pk=auth.team_id).first()
        if team is None or team.slug != team_slug:
            raise exceptions.NotFound()
        author_scopes, author = _author_scopes(team, auth.run_id)
        scopes = STEP_SCOPES | (author_scopes & {"models:promote"})
        return RegistryCaller(team, scopes, Actor(user=author), auth.tracking_run or None, auth.task_id)
    if isinstance(auth, ApiToken):
        access = team_access_for_token(token=auth, slug=team_slug)
    else:
        access = team_access(user=request.user, slug=team_slug)
    if access is None:
        raise exceptions.NotFound()
    scopes = access.scopes
    if isinstance(auth, ApiToken):
        if auth.team_id != access.team.id:
            raise MissingScope(f"This token belongs to another team; mint one in '{access.team.slug}'.")
        scopes = scopes & frozenset(auth.scopes)
    token = auth if isinstance(auth, ApiToken) else None
    return RegistryCaller(access.team, scopes, Actor(user=request.user, token=token))
