"""Writes to the registry. Every alias move and stage transition is guarded and audited."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from cellar_server.core.scoping import team_scope
from cellar_server.registry.aliases import (
    _check_guards,
    _normalize_stage,
    model_alias_delete,
    model_alias_set,
    validate_alias,
    version_stage_transition,
)
from cellar_server.registry.errors import RegistryError, invalid
from cellar_server.registry.models import (
    ModelAlias,
    ModelVersion,
    RegisteredModel,
)
from cellar_server.registry.selectors import model_version_by_number
from cellar_server.registry.sources import registered_source, resolve_source
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record
from cellar_server.tracking.selectors import run_data_for

MAX_NAME = 256


def _now():
    return timezone.now()


def validate_model_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid("A registered model needs a non-empty name.")
    if len(name) > MAX_NAME or "/" in name or "@" in name or ":" in name or name == "-":
        raise invalid(f"Model name '{name[:80]}' must be at most {MAX_NAME} characters, without '/', '@' or ':'.")
    return name


def _tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["key"]): str(t.get("value", "")) for t in tags}


# --- registered models ------------------------------------------------------------------


def model_create(*, team: Team, actor: Actor, name: str, description: str = "", tags: Any = None) -> RegisteredModel:
    name = validate_model_name(name)
    try:
        with transaction.atomic():
            model = RegisteredModel.all_teams.create(
                team=team, name=name, description=description or "", tags=_tags(tags), created_by=actor.user
            )
            audit_record(
                team=team, actor=actor, verb="model.create", target_type="model", target_id=model.pk, target_repr=name
            )
    except IntegrityError:
        raise RegistryError("model_exists", f"Registered Model (name={name}) already exists.") from None
    return model


def model_get_or_create(*, team: Team, actor: Actor, name: str) -> RegisteredModel:
    with team_scope(team.id):
        model = RegisteredModel.objects.filter(name=name).first()
    if model is not None:
        return model
    try:
        return model_create(team=team, actor=actor, name=name)
    except RegistryError as exc:
        if exc.code != "model_exists":
            raise
        with team_scope(team.id):
            return RegisteredModel.objects.get(name=name)


def model_update(*, team: Team, actor: Actor, model: RegisteredModel, description: str) -> RegisteredModel:
    model.description = description or ""
    model.updated_at = _now()
    model.save(update_fields=["description", "updated_at"])
    return model


def model_rename(*, team: Team, actor: Actor, model: RegisteredModel, new_name: str) -> RegisteredModel:
    new_name = validate_model_name(new_name)
    old = model.name
    try:
        with transaction.atomic():
            model.name, model.updated_at = new_name, _now()
            model.save(update_fields=["name", "updated_at"])
            audit_record(
                team=team,
                actor=actor,
                verb="model.rename",
                target_type="model",
                target_id=model.pk,
                target_repr=new_name,
                details={"from": old, "to": new_name},
            )
    except IntegrityError:
        model.name = old
        raise RegistryError("model_exists", f"Registered Model (name={new_name}) already exists.") from None
    return model


@transaction.atomic
def model_delete(*, team: Team, actor: Actor, model: RegisteredModel) -> None:
    with team_scope(team.id):
        for alias in ModelAlias.objects.filter(model=model).select_related("version"):
            _check_guards(team, model, alias.alias, None)
    audit_record(
        team=team, actor=actor, verb="model.delete", target_type="model", target_id=model.pk, target_repr=model.name
    )
    model.delete()


def model_tag_set(*, model: RegisteredModel, key: str, value: str) -> None:
    if not key:
        raise invalid("Missing value for required parameter 'key'.")
    model.tags = {**model.tags, key: str(value)}
    model.updated_at = _now()
    model.save(update_fields=["tags", "updated_at"])


def model_tag_delete(*, model: RegisteredModel, key: str) -> None:
    if key in model.tags:
        model.tags = {k: v for k, v in model.tags.items() if k != key}
        model.save(update_fields=["tags"])


# --- versions ------------------------------------------------------------------------------


def _snapshot(run) -> tuple[dict[str, float], dict[str, str]]:
    if run is None:
        return {}, {}
    data = run_data_for([run.pk])[run.pk]
    metrics = {key: (float("nan") if is_nan else value) for key, value, is_nan, _ts, _step in data.metrics}
    return {k: v for k, v in metrics.items() if v == v}, dict(data.params)


def version_create(
    *,
    team: Team,
    actor: Actor,
    model: RegisteredModel,
    source: str,
    run_uuid: str | None = None,
    task_id: int | None = None,
    description: str = "",
    tags: Any = None,
    metrics: dict[str, float] | None = None,
    profile: dict | None = None,
) -> ModelVersion:
    """A new version from files already in the store. Metrics default to the source run's latest."""
    if not source:
        raise invalid("Missing value for required parameter 'source'.")
    copy_of = None
    if named := registered_source(source):
        copy_of = model_version_by_number(team=team, name=named[0], version=named[1])
    resolved = resolve_source(team, source, copy_of=copy_of)
    run = resolved.run
    if run_uuid and (run is None or run.run_uuid != run_uuid):
        from cellar_server.tracking.errors import TrackingError
        from cellar_server.tracking.services.runs import run_get

        try:
            run = run_get(team=team, run_id=run_uuid)
        except TrackingError:
            raise invalid(f"No run '{run_uuid}' in this team.") from None
    run_metrics, run_params = _snapshot(run)
    if metrics is not None:
        bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            raise invalid(f"Metrics must be numbers; not: {', '.join(map(str, bad))}.")
    with transaction.atomic():
        locked = RegisteredModel.all_teams.select_for_update().get(pk=model.pk)
        last = (
            ModelVersion.all_teams.filter(model=locked).order_by("-version").values_list("version", flat=True).first()
        )
        version = ModelVersion.all_teams.create(
            team=team,
            model=locked,
            version=(last or 0) + 1,
            description=description or "",
            source=source,
            artifact_path=resolved.artifact_path,
            files=resolved.files,
            flavor=resolved.flavor,
            signature=resolved.signature,
            profile=profile,
            metrics={**run_metrics, **{k: float(v) for k, v in (metrics or {}).items()}},
            params=run_params,
            tags=_tags(tags),
            run=run,
            run_uuid=run.run_uuid if run is not None else "",
            task_id=task_id,
            created_by=actor.user,
        )
        locked.updated_at = _now()
        locked.save(update_fields=["updated_at"])
        audit_record(
            team=team,
            actor=actor,
            verb="model.version.create",
            target_type="model",
            target_id=model.pk,
            target_repr=f"{model.name} v{version.version}",
            details={"version": version.version, "source": source},
        )
    return version


def version_update(*, version: ModelVersion, description: str) -> ModelVersion:
    version.description = description or ""
    version.updated_at = _now()
    version.save(update_fields=["description", "updated_at"])
    return version


@transaction.atomic
def version_delete(*, team: Team, actor: Actor, version: ModelVersion) -> None:
    with team_scope(team.id):
        for alias in ModelAlias.objects.filter(version=version):
            _check_guards(team, version.model, alias.alias, None)
    audit_record(
        team=team,
        actor=actor,
        verb="model.version.delete",
        target_type="model",
        target_id=version.model_id,
        target_repr=str(version),
        details={"version": version.version},
    )
    version.delete()


def version_tag_set(*, version: ModelVersion, key: str, value: str) -> None:
    if not key:
        raise invalid("Missing value for required parameter 'key'.")
    version.tags = {**version.tags, key: str(value)}
    version.save(update_fields=["tags"])


def version_tag_delete(*, version: ModelVersion, key: str) -> None:
    if key in version.tags:
        version.tags = {k: v for k, v in version.tags.items() if k != key}
        version.save(update_fields=["tags"])


# Callers (views, the MLflow handlers, the A/B tests app) reach every registry write through here.
__all__ = [
    "_normalize_stage",
    "model_alias_delete",
    "model_alias_set",
    "model_create",
    "model_delete",
    "model_get_or_create",
    "model_rename",
    "model_tag_delete",
    "model_tag_set",
    "model_update",
    "model_version_by_number",
    "validate_alias",
    "validate_model_name",
    "version_create",
    "version_delete",
    "version_stage_transition",
    "version_tag_delete",
    "version_tag_set",
]
