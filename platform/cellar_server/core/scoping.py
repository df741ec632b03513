"""Team scoping that fails closed at the ORM.

Every tenant model inherits `TeamScoped`. Its `objects` manager refuses to
query unless a team scope is active (`team_scope(team_id)`), so forgetting the
team filter raises instead of leaking another team's rows. `all_teams` is the
deliberately named escape hatch for the Django admin, migrations and
platform-wide jobs; it is also the default manager so that Django's own
machinery (related managers, admin) keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import models

_current_team_id: ContextVar[int | None] = ContextVar("cellar_team_id", default=None)


class TeamScopeError(RuntimeError):
    """A team-scoped model was queried outside any team scope."""


@contextmanager
def team_scope(team_id: int) -> Iterator[None]:
    """Run the enclosed queries on behalf of one team."""
    token = _current_team_id.set(team_id)
    try:
        yield
    finally:
        _current_team_id.reset(token)


def current_team_id() -> int | None:
    return _current_team_id.get()


class TeamScopedManager(models.Manager):
    """Filters by the active team scope; raises when there is none."""

    def get_queryset(self) -> models.QuerySet:
        team_id = _current_team_id.get()
        if team_id is None:
            raise TeamScopeError(
                f"{self.model.__name__}.objects used outside team_scope(); "
                "use team_scope(team_id) or, deliberately, .all_teams"
            )
        return super().get_queryset().filter(team_id=team_id)


class TeamScoped(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")

    all_teams = models.Manager()
    objects = TeamScopedManager()

    class Meta:
        abstract = True
        default_manager_name = "all_teams"
