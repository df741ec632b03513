"""Writes for teams, members, invitations, tokens and quotas. Every one is audited."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.teams import tokens as secrets_
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import ApiToken, AuditEvent, Invitation, Membership, Team
from cellar_server.teams.roles import ROLE_SCOPES, Role, scopes_for

RESERVED_SLUGS = {"new", "api", "admin", "static", "t", "teams", "accounts", "invitations"}
INVITATION_TTL = timedelta(days=7)
audit_logger = logging.getLogger("cellar.audit")
MAX_TOKEN_DAYS = 365


def audit_record(
    *,
    team: Team,
    actor: Actor,
    verb: str,
    target_type: str,
    target_id: Any = "",
    target_repr: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.all_teams.create(
        team=team,
        actor=actor.user,
        actor_name=actor.name,
        token=actor.token,
        verb=verb,
        target_type=target_type,
        target_id=str(target_id),
        target_repr=target_repr[:200],
        details=details or {},
    )


def _change(before: Any, after: Any) -> dict[str, Any]:
    """The audit shape of a changed value."""
    return {"from": before, "to": after}


def _validate_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ServiceError("invalid_role", f"'{role}' is not a role; choose one of: {allowed}.") from None


def _membership(team: Team, user_id: int) -> Membership | None:
    with team_scope(team.id):
        return Membership.objects.filter(user_id=user_id).select_related("user").first()


def _actor_role(team: Team, actor: Actor) -> str | None:
    if actor.user is None:
        return Role.OWNER.value  # the system (bootstrap command) acts with full rights
    membership = _membership(team, actor.user.pk)
    return membership.role if membership else None


# --- Teams ---------------------------------------------------------------


SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def team_slug_validate(slug: str) -> str:
    slug = (slug or "").strip()
    if not SLUG_RE.match(slug):
        raise ServiceError(
            "invalid_slug", "A team slug uses lowercase letters, digits and single hyphens, like 'fraud-models'."
        )
    if len(slug) > 50:
        raise ServiceError("invalid_slug", "A team slug is at most 50 characters.")
    if slug in RESERVED_SLUGS:
        raise ServiceError("invalid_slug", f"'{slug}' is reserved; choose another slug.")
    return slug


@transaction.atomic
def team_create(*, actor: Actor, slug: str, name: str = "", owner=None) -> Team:
    """Create a team; `owner` (default: the acting user) becomes its first owner."""
    slug = team_slug_validate(slug)
    if Team.objects.filter(slug=slug).exists():
        raise ServiceError(
            "duplicate_slug", f"A team with slug '{slug}' already exists; choose another.", status_code=409
        )
    owner = owner or actor.user
    if owner is None:
        raise ServiceError("owner_required", "A new team needs an owner.")
    try:
        with transaction.atomic():
            team = Team.objects.create(slug=slug, name=(name or slug).strip()[:120])
    except IntegrityError:
        raise ServiceError(
            "duplicate_slug", f"A team with slug '{slug}' already exists; choose another.", status_code=409
        ) from None
    Membership.all_teams.create(team=team, user=owner, role=Role.OWNER)
    audit_record(team=team, actor=actor, verb="team.create", target_type="team", target_id=team.pk, target_repr=slug)
    return team


@transaction.atomic
def team_update(*, actor: Actor, team: Team, name: str) -> Team:
    name = (name or "").strip()
    if not name:
        raise ServiceError("invalid_name", "A team name cannot be empty.")
    old = team.name
    team.name = name[:120]
    team.save(update_fields=["name"])
    audit_record(
        team=team,
        actor=actor,
        verb="team.update",
        target_type="team",
        target_id=team.pk,
        target_repr=team.slug,
        details={"name": _change(old, team.name)},
    )
    return team


@transaction.atomic
def team_delete(*, actor: Actor, team: Team) -> None:
    # The audit log goes with the team (it is team data); the server log keeps the deletion.
    audit_logger.warning("team.delete", extra={"team": team.slug, "actor": actor.name})
    team.delete()


QUOTA_FIELDS = ("max_concurrent_cpu_tasks", "max_concurrent_gpu_tasks", "gpu_hours_per_month")


@transaction.atomic
def team_quota_update(*, actor: Actor, team: Team, **changes: Any) -> Team:
    unknown = set(changes) - set(QUOTA_FIELDS)
    if unknown:
        raise ServiceError("invalid_quota", f"Unknown quota field(s): {', '.join(sorted(unknown))}.")
    diff = {}
    for field, value in changes.items():
        if value is None:
            continue
        if field == "gpu_hours_per_month":
            value = Decimal(str(value))
        if value < 0:
            raise ServiceError("invalid_quota", f"{field} cannot be negative.")
        old = getattr(team, field)
        if old != value:
            diff[field] = _change(str(old), str(value))
            setattr(team, field, value)
    if diff:
        team.save(update_fields=list(diff))
        audit_record(
            team=team,
            actor=actor,
            verb="quota.update",
            target_type="team",
            target_id=team.pk,
            target_repr=team.slug,
            details=diff,
        )
    return team


# --- Members ---------------------------------------------------------------


def _lock_team(team: Team) -> None:
    """Serialize membership changes per team so two of them cannot both remove the last owner.

    PostgreSQL takes a row lock; SQLite's IMMEDIATE transactions already serialize writers.
    """
    Team.objects.select_for_update().filter(pk=team.pk).values_list("pk", flat=True).first()


def _owner_count(team: Team) -> int:
    with team_scope(team.id):
        return Membership.objects.filter(role=Role.OWNER).count()


def _check_can_manage(team: Team, actor: Actor, target_role: str, new_role: str | None = None) -> None:
    """Admins manage editors and viewers; only owners touch owners or make owners."""
    actor_role = _actor_role(team, actor)
    touches_owner = target_role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor_role != Role.OWNER:
        raise ServiceError(
            "owner_required", "Only an owner can grant, change or remove the owner role.", status_code=403
        )


@transaction.atomic
def membership_role_change(*, actor: Actor, team: Team, user_id: int, role: str) -> Membership:
    new_role = _validate_role(role)
    _lock_team(team)
    membership = _membership(team, user_id)
    if membership is None:
        raise ServiceError("not_found", "That user is not a member of this team.", status_code=404)
    if membership.role == new_role:
        return membership
    _check_can_manage(team, actor, membership.role, new_role)
    if membership.role == Role.OWNER and _owner_count(team) <= 1:
        raise ServiceError(
            "last_owner", "This is the team's last owner; make someone else an owner first.", status_code=409
        )
    old = membership.role
    membership.role = new_role
    membership.save(update_fields=["role"])
    audit_record(
        team=team,
        actor=actor,
        verb="member.role_change",
        target_type="user",
        target_id=user_id,
        target_repr=membership.user.get_username(),
        details={"role": _change(old, new_role.value)},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, team: Team, user_id: int) -> None:
    _lock_team(team)
    membership = _membership(team, user_id)
    if membership is None:
        raise ServiceError("not_found", "That user is not a member of this team.", status_code=404)
    leaving_self = actor.user is not None and actor.user.pk == user_id
    if not leaving_self:
        _check_can_manage(team, actor, membership.role)
    if membership.role == Role.OWNER and _owner_count(team) <= 1:
        raise ServiceError(
            "last_owner", "The last owner cannot be removed; make someone else an owner first.", status_code=409
        )
    username = membership.user.get_username()
    membership.delete()
    # A removed member's tokens for this team stop working at once.
    with team_scope(team.id):
        ApiToken.objects.filter(user_id=user_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_record(
        team=team,
        actor=actor,
        verb="member.leave" if leaving_self else "member.remove",
        target_type="user",
        target_id=user_id,
        target_repr=username,
    )


# --- Invitations ---------------------------------------------------------------


@transaction.atomic
def invitation_create(*, actor: Actor, team: Team, role: str, email: str = "") -> tuple[Invitation, str]:
    """Create an invitation link; returns it with the raw secret, shown once."""
    new_role = _validate_role(role)
    _check_can_manage(team, actor, Role.VIEWER.value, new_role)
    raw = secrets_.new_invitation_secret()
    invitation = Invitation.all_teams.create(
        team=team,
        role=new_role,
        email=(email or "").strip(),
        token_hash=secrets_.hash_secret(raw),
        invited_by=actor.user,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    audit_record(
        team=team,
        actor=actor,
        verb="invitation.create",
        target_type="invitation",
        target_id=invitation.pk,
        target_repr=invitation.email or f"link #{invitation.pk}",
        details={"role": new_role.value},
    )
    return invitation, raw


@transaction.atomic
def invitation_revoke(*, actor: Actor, invitation: Invitation) -> Invitation:
    if invitation.status != "pending":
        raise ServiceError(
            "invitation_not_pending", f"This invitation is already {invitation.status}.", status_code=409
        )
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        team=invitation.team,
        actor=actor,
        verb="invitation.revoke",
        target_type="invitation",
        target_id=invitation.pk,
        target_repr=invitation.email or f"link #{invitation.pk}",
    )
    return invitation


def invitation_for_secret(raw: str) -> Invitation | None:
    # Looked up by its secret before any team is known: the deliberate escape hatch.
    return Invitation.all_teams.select_related("team").filter(token_hash=secrets_.hash_secret(raw or "")).first()


@transaction.atomic
def invitation_accept(*, user, raw: str) -> Membership:
    invitation = invitation_for_secret(raw)
    if invitation is None:
        raise ServiceError("invitation_invalid", "This invitation link is not valid.", status_code=404)
    invitation = Invitation.all_teams.select_for_update().get(pk=invitation.pk)
    if invitation.status != "pending":
        raise ServiceError(
            "invitation_not_pending",
            f"This invitation is {invitation.status}; ask a team admin for a new link.",
            status_code=409,
        )
    team = invitation.team
    if _membership(team, user.pk) is not None:
        raise ServiceError("already_member", f"You are already a member of '{team.slug}'.", status_code=409)
    membership = Membership.all_teams.create(team=team, user=user, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        team=team,
        actor=Actor(user=user),
        verb="invitation.accept",
        target_type="user",
        target_id=user.pk,
        target_repr=user.get_username(),
        details={"role": invitation.role, "invitation": invitation.pk},
    )
    return membership


# --- API tokens ---------------------------------------------------------------


def _token_expiry(expires_in_days: int | None) -> datetime | None:
    if expires_in_days is None:
        return None
    if not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise ServiceError("invalid_expiry", f"A token expires in 1 to {MAX_TOKEN_DAYS} days.")
    return timezone.now() + timedelta(days=expires_in_days)


@transaction.atomic
def api_token_create(
    *,
    actor: Actor,
    team: Team,
    name: str,
    scopes: list[str] | None = None,
    expires_in_days: int | None = 90,
    user=None,
) -> tuple[ApiToken, str]:
    """Mint a token for `user` (default: the actor); returns it with the raw secret, shown once."""
    user = user or actor.user
    name = (name or "").strip()
    if not name:
        raise ServiceError("invalid_name", "Give the token a name that says what uses it, like 'ci-training'.")
    membership = _membership(team, user.pk)
    if membership is None:
        raise ServiceError("not_member", "Tokens are minted for members of the team.", status_code=403)
    allowed = scopes_for(membership.role)
    if actor.token is not None:
        allowed = allowed & frozenset(actor.token.scopes)  # a token cannot mint a broader one
    requested = sorted(set(scopes)) if scopes else sorted(allowed)
    unknown = [s for s in requested if s not in ROLE_SCOPES[Role.OWNER]]
    if unknown:
        raise ServiceError("unknown_scope", f"Unknown scope(s): {', '.join(unknown)}.")
    beyond = [s for s in requested if s not in allowed]
    if beyond:
        raise ServiceError(
            "scope_not_allowed",
            f"Your role '{membership.role}' cannot grant: {', '.join(beyond)}. "
            "A token carries a subset of your scopes.",
            status_code=403,
        )
    prefix, raw = secrets_.new_api_token()
    token = ApiToken.all_teams.create(
        team=team,
        user=user,
        name=name[:100],
        prefix=prefix,
        token_hash=secrets_.hash_secret(raw),
        scopes=requested,
        expires_at=_token_expiry(expires_in_days),
    )
    audit_record(
        team=team,
        actor=actor,
        verb="token.create",
        target_type="token",
        target_id=token.pk,
        target_repr=f"{token.name} ({prefix})",
        details={
            "scopes": requested,
            "expires_at": token.expires_at.isoformat(timespec="seconds") if token.expires_at else None,
        },
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, actor: Actor, token: ApiToken, can_revoke_others: bool) -> ApiToken:
    is_own = actor.user is not None and token.user_id == actor.user.pk
    if not is_own and not can_revoke_others:
        raise ServiceError("permission_denied", "Only admins can revoke other members' tokens.", status_code=403)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        team=token.team,
        actor=actor,
        verb="token.revoke",
        target_type="token",
        target_id=token.pk,
        target_repr=f"{token.name} ({token.prefix})",
    )
    return token


LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_token_touch(*, token: ApiToken) -> None:
    """Record use at most once a minute so a busy script does not write on every call."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.all_teams.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def user_ensure(*, username: str, password: str, email: str = "", is_staff: bool = False):
    """Create a user if missing (bootstrap); an existing user is left as is."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False
    user = User.objects.create_user(username=username, password=password, email=email)
    if is_staff:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user, True
