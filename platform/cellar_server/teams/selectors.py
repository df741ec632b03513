"""Reads for teams: membership resolution, lists for pages and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import OuterRef, QuerySet, Subquery

from cellar_server.core.scoping import team_scope
from cellar_server.teams.models import ApiToken, AuditEvent, Invitation, Membership, Team
from cellar_server.teams.roles import scopes_for


@dataclass(frozen=True)
class TeamAccess:
    """A user's standing in one team: the role (None for staff who aren't members) and scopes."""

    team: Team
    role: str | None
    scopes: frozenset[str]


def team_access(*, user, slug: str) -> TeamAccess | None:
    """Resolve a team for a user; None when it is missing or they may not see it (→ 404)."""
    if user is None or not user.is_authenticated:
        return None
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        return None
    with team_scope(team.id):
        membership = Membership.objects.filter(user_id=user.pk).only("role").first()
    role = membership.role if membership else None
    if role is None and not user.is_staff:
        return None
    return TeamAccess(team=team, role=role, scopes=scopes_for(role, is_staff=user.is_staff))


def team_access_for_token(*, token: ApiToken, slug: str) -> TeamAccess | None:
    """Like team_access, for a token call: its own team and the owner's role came with the token's row."""
    if token.team.slug != slug or not hasattr(token, "member_role"):
        return team_access(user=token.user, slug=slug)
    role = token.member_role
    if role is None and not token.user.is_staff:
        return None
    return TeamAccess(team=token.team, role=role, scopes=scopes_for(role, is_staff=token.user.is_staff))


def teams_for_user(*, user) -> list[tuple[Team, str]]:
    memberships = Membership.all_teams.filter(user_id=user.pk).select_related("team").order_by("team__slug")
    return [(m.team, m.role) for m in memberships]


def teams_all() -> QuerySet[Team]:
    """Platform admins' view of every team."""
    return Team.objects.order_by("slug")


def membership_list(*, team: Team) -> QuerySet[Membership]:
    with team_scope(team.id):
        return Membership.objects.select_related("user").order_by("user__username")


def invitation_list(*, team: Team, pending_only: bool = True) -> list[Invitation]:
    with team_scope(team.id):
        qs = Invitation.objects.select_related("invited_by").order_by("-created_at")
        invitations = list(qs)
    return [i for i in invitations if i.status == "pending"] if pending_only else invitations


def api_token_list(*, team: Team, user=None) -> QuerySet[ApiToken]:
    """All the team's tokens, or one member's when `user` is given."""
    with team_scope(team.id):
        qs = ApiToken.objects.select_related("user").order_by("-created_at")
        if user is not None:
            qs = qs.filter(user_id=user.pk)
        return qs


def api_token_for_prefix(prefix: str) -> ApiToken | None:
    # Authentication runs before any team is known: the deliberate escape hatch. The owner's
    # current role in the token's team comes in the same query (one round trip per API call).
    role = Membership.all_teams.filter(team_id=OuterRef("team_id"), user_id=OuterRef("user_id")).values("role")[:1]
    return (
        ApiToken.all_teams.select_related("user", "team")
        .annotate(member_role=Subquery(role))
        .filter(prefix=prefix)
        .first()
    )


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    verb: str = ""
    since: date | None = None
    until: date | None = None


def audit_event_list(*, team: Team, filters: AuditFilters) -> QuerySet[AuditEvent]:
    with team_scope(team.id):
        qs = AuditEvent.objects.all()
    if filters.actor:
        qs = qs.filter(actor_name=filters.actor)
    if filters.verb:
        qs = qs.filter(verb__startswith=filters.verb) if filters.verb.endswith(".") else qs.filter(verb=filters.verb)
    if filters.since:
        qs = qs.filter(created_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__date__lte=filters.until)
    return qs.order_by("-created_at", "-id")


def audit_verbs(*, team: Team) -> list[str]:
    with team_scope(team.id):
        return list(AuditEvent.objects.order_by("verb").values_list("verb", flat=True).distinct())


def audit_actors(*, team: Team) -> list[str]:
    with team_scope(team.id):
        return list(AuditEvent.objects.order_by("actor_name").values_list("actor_name", flat=True).distinct())
