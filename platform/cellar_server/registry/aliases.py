"""Aliases and MLflow's legacy stages: every move is guarded (registry/guards.py), recorded in the
alias history and audited. `services` re-exports these for callers (the A/B tests app)."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from cellar_server.core.scoping import team_scope
from cellar_server.registry import guards
from cellar_server.registry.errors import RegistryError, invalid, not_found
from cellar_server.registry.models import (
    ARCHIVED,
    PRODUCTION,
    STAGES,
    STAGING,
    AliasMove,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
)
from cellar_server.registry.selectors import model_version_by_number
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record

_ALIAS = re.compile(r"^[\w\-]+$")
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


def _now():
    return timezone.now()


def validate_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or len(alias) > 255:
        raise invalid(
            f"Invalid alias name '{alias}'. Aliases may only contain alphanumerics, underscores and dashes "
            "(at most 255 characters)."
        )
    if _RESERVED_ALIAS.match(alias):
        raise invalid(f"'{alias}' is reserved and cannot be used as an alias (nor can v<number>).")
    return alias


# --- aliases and stages ---------------------------------------------------------------------


def _check_guards(team: Team, model: RegisteredModel, alias: str, new_version: ModelVersion | None) -> None:
    refusal = guards.alias_refusal(team, model, alias, new_version)
    if refusal:
        raise RegistryError("alias_frozen", f"Alias '{alias}' of '{model.name}' cannot move now: {refusal}")


def _record_move(team, actor, model, alias, before, after, reason) -> None:
    AliasMove.all_teams.create(
        team=team,
        model=model,
        alias=alias,
        from_version=before,
        to_version=after,
        reason=(reason or "")[:500],
        actor=actor.user,
        actor_name=actor.name,
    )
    audit_record(
        team=team,
        actor=actor,
        verb="model.alias.set" if after is not None else "model.alias.delete",
        target_type="model",
        target_id=model.pk,
        target_repr=f"{model.name}@{alias}",
        details={"alias": alias, "from": before, "to": after, "reason": reason or ""},
    )


@transaction.atomic
def model_alias_set(
    *,
    team: Team,
    actor: Actor,
    model: RegisteredModel,
    alias: str,
    version: ModelVersion | int | str,
    reason: str | None = None,
    bypass_guards: bool = False,
) -> ModelAlias:
    """Point `alias` at a version (a ModelVersion or its number), guarded and audited."""
    alias = validate_alias(alias)
    if not isinstance(version, ModelVersion):
        version = model_version_by_number(team=team, name=model.name, version=version)
    if version.model_id != model.pk:
        raise invalid(f"Version {version.version} belongs to another model.")
    with team_scope(team.id):
        current = (
            ModelAlias.objects.select_for_update().select_related("version").filter(model=model, alias=alias).first()
        )
    before = current.version.version if current is not None else None
    if before == version.version:
        return current
    if not bypass_guards:
        _check_guards(team, model, alias, version)
    if current is None:
        current = ModelAlias.all_teams.create(team=team, model=model, alias=alias, version=version)
    else:
        current.version, current.updated_at = version, _now()
        current.save(update_fields=["version", "updated_at"])
    _record_move(team, actor, model, alias, before, version.version, reason)
    return current


@transaction.atomic
def model_alias_delete(
    *, team: Team, actor: Actor, model: RegisteredModel, alias: str, reason: str | None = None
) -> None:
    with team_scope(team.id):
        current = ModelAlias.objects.select_related("version").filter(model=model, alias=alias).first()
    if current is None:
        raise not_found(f"Registered model alias {alias} not found.")
    _check_guards(team, model, alias, None)
    before = current.version.version
    current.delete()
    _record_move(team, actor, model, alias, before, None, reason)


def _normalize_stage(stage: Any) -> str:
    for value, _ in STAGES:
        if isinstance(stage, str) and stage.lower() == value.lower():
            return value
    raise invalid(f"Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived.")


@transaction.atomic
def version_stage_transition(
    *, team: Team, actor: Actor, version: ModelVersion, stage: str, archive_existing: bool = False
) -> ModelVersion:
    """MLflow's legacy stages (deprecated upstream in favour of aliases), guarded as `stage:<Stage>`."""
    stage = _normalize_stage(stage)
    model = version.model
    _check_guards(team, model, f"stage:{stage}", version)
    before = version.stage
    if archive_existing and stage in (STAGING, PRODUCTION):
        with team_scope(team.id):
            others = ModelVersion.objects.filter(model=model, stage=stage).exclude(pk=version.pk)
            if others.exists():
                _check_guards(team, model, f"stage:{stage}", None)
            others.update(stage=ARCHIVED, updated_at=_now())
    version.stage, version.updated_at = stage, _now()
    version.save(update_fields=["stage", "updated_at"])
    if before != stage:
        AliasMove.all_teams.create(
            team=team,
            model=model,
            alias=f"stage:{stage}",
            from_version=None,
            to_version=version.version,
            reason=f"stage {before} -> {stage}",
            actor=actor.user,
            actor_name=actor.name,
        )
        audit_record(
            team=team,
            actor=actor,
            verb="model.stage.transition",
            target_type="model",
            target_id=model.pk,
            target_repr=str(version),
            details={"version": version.version, "from": before, "to": stage},
        )
    return version
