"""Who may read a secret's value or resolve a connection, and the authentication for steps.

- A pipeline step, by its task token: only while its attempt is in flight, only in its own
  team, only names its step declared (`cellar/data/declared.py`: a `secrets:` tag or a
  literal `cellar.secret("x")` / `cellar.connect("x")` call). Naming a connection grants the
  secrets it uses.
- A person (session or API token): the `data:write` scope (editor and up). Viewers cannot.

Anything else is 404 for a name the caller may not know exists (another team, a name the
step did not declare is 403 with its own code so the fix is clear).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from cellar.data.declared import declared_names
from cellar_server.core.task_tokens import task_grant

READ_VALUES = "data:write"


@dataclass(frozen=True)
class StepReader:
    """A running step: its team, its tracking run and the names its step declared."""

    team_id: int
    task_id: int
    tracking_run: str
    declared: frozenset[str]


class TaskTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <task token>` from a running step; other tokens fall through."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        secret = header[1].decode("latin-1")
        if secret.startswith("cellar_") or ":" not in secret:
            return None  # an API token (or nothing like a signed task token)
        grant = task_grant(secret)
        if grant is None:
            return None
        return AnonymousUser(), StepReader(
            team_id=grant.team_id,
            task_id=grant.task_id,
            tracking_run=grant.tracking_run,
            declared=step_declared(grant.task_id),
        )

    def authenticate_header(self, request) -> str:
        return "Bearer"


def step_declared(task_id: int) -> frozenset[str]:
    """The names the task's step declared (read from its version's spec, cached per version/step)."""
    from cellar_server.pipelines.models import Task  # a read of the engine's rows: the task's step

    row = Task.all_teams.filter(pk=task_id).values_list("run__version_id", "step").first()
    if row is None:
        return frozenset()
    return _declared_for(*row)


@lru_cache(maxsize=4096)
def _declared_for(version_id: int, step_name: str) -> frozenset[str]:
    # Versions are immutable (content-addressed), so caching per (version, step) is exact.
    from cellar_server.pipelines.models import PipelineVersion

    spec = PipelineVersion.all_teams.filter(pk=version_id).values_list("spec", flat=True).first() or {}
    for step in spec.get("steps", []):
        if step.get("name") == step_name:
            return frozenset(
                declared_names(code=step.get("code", ""), prelude=step.get("prelude", ""), tags=step.get("tags", []))
            )
    return frozenset()


class NotDeclared(exceptions.PermissionDenied):
    def __init__(self, name: str):
        super().__init__(
            detail=(
                f"This step did not declare '{name}': add a 'secrets:{name}' tag to the step's cell, or call "
                f'cellar.secret("{name}") / cellar.connect("{name}") with the name written literally.'
            )
        )
        self.cellar_code = "secret_not_declared"


class ViewerCannotRead(exceptions.PermissionDenied):
    def __init__(self):
        super().__init__(detail="Reading secret values needs the 'data:write' scope (editor or above).")
        self.cellar_code = "missing_scope"


def step_may_read(reader: StepReader, *, name: str, via_connections: set[str]) -> bool:
    """A step may read secret `name` if it declared it, or declared a connection that uses it."""
    return name in reader.declared or bool(reader.declared & via_connections)
