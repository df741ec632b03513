"""MLflow's model-registry endpoints (`registered-models/*`, `model-versions/*`) over the registry services."""

from __future__ import annotations

from typing import Any

from cellar_server.core.scoping import team_scope
from cellar_server.registry import selectors, services
from cellar_server.registry.errors import invalid, not_found
from cellar_server.registry.mlflow import search
from cellar_server.registry.mlflow import serialize as s
from cellar_server.registry.models import ModelAlias, ModelVersion, RegisteredModel
from cellar_server.teams.actors import Actor
from cellar_server.tracking.mlflow.auth import Caller
from cellar_server.tracking.mlflow.protocol import Fields
from cellar_server.tracking.selectors import decode_page_token, encode_page_token

READ, WRITE, PROMOTE = "models:read", "models:write", "models:promote"


def _actor(caller: Caller) -> Actor:
    return Actor(user=caller.user, token=caller.token)


def _model(caller: Caller, f: Fields) -> RegisteredModel:
    return selectors.model_for_name(team=caller.team, name=f.required("name"))


def _version(caller: Caller, f: Fields) -> ModelVersion:
    return services.model_version_by_number(team=caller.team, name=f.required("name"), version=f.required("version"))


def _aliases_of(caller: Caller, version: ModelVersion) -> list[str]:
    return [a for a, n in selectors.alias_map(team=caller.team, model=version.model).items() if n == version.version]


def _latest_per_stage(caller: Caller, model: RegisteredModel, stages: list[str] | None = None) -> list[ModelVersion]:
    latest: dict[str, ModelVersion] = {}
    for version in selectors.versions_for(team=caller.team, model=model).select_related("model", "created_by"):
        latest.setdefault(version.stage, version)  # newest first
    wanted = [services._normalize_stage(st) for st in stages] if stages else None
    return sorted((v for stage, v in latest.items() if wanted is None or stage in wanted), key=lambda v: v.version)


def _model_payload(caller: Caller, model: RegisteredModel) -> dict[str, Any]:
    return s.registered_model(
        model, aliases=selectors.alias_map(team=caller.team, model=model), latest=_latest_per_stage(caller, model)
    )


def _version_payload(caller: Caller, version: ModelVersion) -> dict[str, Any]:
    return {"model_version": s.model_version(version, _aliases_of(caller, version))}


def _max_results(f: Fields, default: int, cap: int) -> int:
    raw = f.get("max_results")
    try:
        value = int(raw) if raw not in (None, "") else default
    except (TypeError, ValueError):
        raise invalid(f"Invalid value for max_results: '{raw}'.") from None
    if value < 1 or value > cap:
        raise invalid(f"Invalid value for max_results. It must be between 1 and {cap}, got {value}.")
    return value


# --- registered models ---------------------------------------------------------------------


def model_create(caller: Caller, f: Fields) -> dict:
    model = services.model_create(
        team=caller.team,
        actor=_actor(caller),
        name=f.required("name"),
        description=f.get("description") or "",
        tags=f.list("tags"),
    )
    return {"registered_model": _model_payload(caller, model)}


def model_get(caller: Caller, f: Fields) -> dict:
    return {"registered_model": _model_payload(caller, _model(caller, f))}


def model_rename(caller: Caller, f: Fields) -> dict:
    model = services.model_rename(
        team=caller.team, actor=_actor(caller), model=_model(caller, f), new_name=f.required("new_name")
    )
    return {"registered_model": _model_payload(caller, model)}


def model_update(caller: Caller, f: Fields) -> dict:
    model = services.model_update(
        team=caller.team, actor=_actor(caller), model=_model(caller, f), description=f.get("description") or ""
    )
    return {"registered_model": _model_payload(caller, model)}


def model_delete(caller: Caller, f: Fields) -> dict:
    services.model_delete(team=caller.team, actor=_actor(caller), model=_model(caller, f))
    return {}


_MODEL_ORDER = {"name": "name", "creation_timestamp": "created_at", "last_updated_timestamp": "updated_at"}
_VERSION_ORDER = {
    "name": "model__name",
    "version_number": "version",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}


def _order(f: Fields, allowed: dict[str, str], default: list[str]) -> list[str]:
    fields: list[str] = []
    for clause in f.list("order_by"):
        parts = str(clause).split()
        key = parts[0] if parts else ""
        if key not in allowed or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise invalid(f"Invalid order_by clause '{clause}'; order by {', '.join(allowed)} [ASC|DESC].")
        fields.append(("-" if len(parts) == 2 and parts[1].upper() == "DESC" else "") + allowed[key])
    return fields + [d for d in default if d.lstrip("-") not in {x.lstrip("-") for x in fields}]


def model_search(caller: Caller, f: Fields) -> dict:
    limit = _max_results(f, 100, 1000)
    offset = decode_page_token(f.get("page_token"))
    with team_scope(caller.team.id):
        queryset = search.apply_filter(
            RegisteredModel.objects.all(), f.get("filter"), versions=False, name_field="name"
        )
        page = list(queryset.order_by(*_order(f, _MODEL_ORDER, ["name"]))[offset : offset + limit + 1])
    body: dict[str, Any] = {"registered_models": [_model_payload(caller, m) for m in page[:limit]]}
    if len(page) > limit:
        body["next_page_token"] = encode_page_token(offset + limit)
    return body


def latest_versions(caller: Caller, f: Fields) -> dict:
    model = _model(caller, f)
    aliases = selectors.alias_map(team=caller.team, model=model)
    by_version: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(number, []).append(alias)
    versions = _latest_per_stage(caller, model, f.list("stages") or None)
    return {"model_versions": [s.model_version(v, by_version.get(v.version), model.name) for v in versions]}


def model_set_tag(caller: Caller, f: Fields) -> dict:
    services.model_tag_set(model=_model(caller, f), key=f.required("key"), value=f.get("value") or "")
    return {}


def model_delete_tag(caller: Caller, f: Fields) -> dict:
    services.model_tag_delete(model=_model(caller, f), key=f.required("key"))
    return {}


def alias_set(caller: Caller, f: Fields) -> dict:
    services.model_alias_set(
        team=caller.team,
        actor=_actor(caller),
        model=_model(caller, f),
        alias=f.required("alias"),
        version=f.required("version"),
    )
    return {}


def alias_delete(caller: Caller, f: Fields) -> dict:
    services.model_alias_delete(
        team=caller.team, actor=_actor(caller), model=_model(caller, f), alias=f.required("alias")
    )
    return {}


def alias_get(caller: Caller, f: Fields) -> dict:
    version = selectors.model_version_get(team=caller.team, name=f.required("name"), alias=f.required("alias"))
    return _version_payload(caller, version)


# --- model versions --------------------------------------------------------------------------


def version_create(caller: Caller, f: Fields) -> dict:
    name = f.required("name")
    model = selectors.model_for_name(team=caller.team, name=name)
    version = services.version_create(
        team=caller.team,
        actor=_actor(caller),
        model=model,
        source=f.required("source"),
        run_uuid=f.get("run_id") or None,
        description=f.get("description") or "",
        tags=f.list("tags"),
    )
    return _version_payload(caller, version)


def version_get(caller: Caller, f: Fields) -> dict:
    return _version_payload(caller, _version(caller, f))


def version_update(caller: Caller, f: Fields) -> dict:
    version = services.version_update(version=_version(caller, f), description=f.get("description") or "")
    return _version_payload(caller, version)


def version_delete(caller: Caller, f: Fields) -> dict:
    services.version_delete(team=caller.team, actor=_actor(caller), version=_version(caller, f))
    return {}


def version_search(caller: Caller, f: Fields) -> dict:
    limit = _max_results(f, 10000, 200000)
    offset = decode_page_token(f.get("page_token"))
    with team_scope(caller.team.id):
        queryset = ModelVersion.objects.select_related("model", "created_by")
        queryset = search.apply_filter(queryset, f.get("filter"), versions=True, name_field="model__name")
        order = _order(f, _VERSION_ORDER, ["model__name", "-version"])
        page = list(queryset.order_by(*order)[offset : offset + limit + 1])
        aliases: dict[int, list[str]] = {}
        for version_id, alias in ModelAlias.objects.filter(version__in=page).values_list("version_id", "alias"):
            aliases.setdefault(version_id, []).append(alias)
    body: dict[str, Any] = {"model_versions": [s.model_version(v, aliases.get(v.pk)) for v in page[:limit]]}
    if len(page) > limit:
        body["next_page_token"] = encode_page_token(offset + limit)
    return body


def download_uri(caller: Caller, f: Fields) -> dict:
    version = _version(caller, f)
    if not version.artifact_path:
        raise not_found(f"Model Version (name={version.model.name}, version={version.version}) has no artifact path.")
    return {"artifact_uri": f"mlflow-artifacts:/{version.artifact_path}"}


def transition_stage(caller: Caller, f: Fields) -> dict:
    archive = f.get("archive_existing_versions")
    version = services.version_stage_transition(
        team=caller.team,
        actor=_actor(caller),
        version=_version(caller, f),
        stage=f.required("stage"),
        archive_existing=archive in (True, "true", "True", "1"),
    )
    return _version_payload(caller, version)


def version_set_tag(caller: Caller, f: Fields) -> dict:
    services.version_tag_set(version=_version(caller, f), key=f.required("key"), value=f.get("value") or "")
    return {}


def version_delete_tag(caller: Caller, f: Fields) -> dict:
    services.version_tag_delete(version=_version(caller, f), key=f.required("key"))
    return {}


ROUTES = [
    ("POST", "registered-models/create", model_create, WRITE),
    ("GET", "registered-models/get", model_get, READ),
    ("POST", "registered-models/rename", model_rename, WRITE),
    ("PATCH", "registered-models/update", model_update, WRITE),
    ("DELETE", "registered-models/delete", model_delete, PROMOTE),
    ("GET", "registered-models/search", model_search, READ),
    ("POST", "registered-models/get-latest-versions", latest_versions, READ),
    ("GET", "registered-models/get-latest-versions", latest_versions, READ),
    ("POST", "registered-models/set-tag", model_set_tag, WRITE),
    ("DELETE", "registered-models/delete-tag", model_delete_tag, WRITE),
    ("POST", "registered-models/alias", alias_set, PROMOTE),
    ("DELETE", "registered-models/alias", alias_delete, PROMOTE),
    ("GET", "registered-models/alias", alias_get, READ),
    ("POST", "model-versions/create", version_create, WRITE),
    ("GET", "model-versions/get", version_get, READ),
    ("PATCH", "model-versions/update", version_update, WRITE),
    ("DELETE", "model-versions/delete", version_delete, WRITE),
    ("GET", "model-versions/search", version_search, READ),
    ("GET", "model-versions/get-download-uri", download_uri, READ),
    ("POST", "model-versions/transition-stage", transition_stage, PROMOTE),
    ("POST", "model-versions/set-tag", version_set_tag, WRITE),
    ("DELETE", "model-versions/delete-tag", version_delete_tag, WRITE),
]
