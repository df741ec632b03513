"""Registry records in MLflow's proto-JSON shape (ids and versions as strings, times in ms)."""

from __future__ import annotations

from typing import Any

from cellar_server.registry.models import ModelVersion, RegisteredModel


def _ms(value) -> int:
    return int(value.timestamp() * 1000)


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def model_version(version: ModelVersion, aliases: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name or version.model.name,
        "version": str(version.version),
        "creation_timestamp": _ms(version.created_at),
        "last_updated_timestamp": _ms(version.updated_at),
        "user_id": version.created_by.get_username() if version.created_by_id and version.created_by else "",
        "current_stage": version.stage,
        "description": version.description,
        "source": version.source,
        "run_id": version.run_uuid,
        "status": version.status,
        "status_message": version.status_message,
        "tags": _tags(version.tags),
        "run_link": "",
        "aliases": sorted(aliases or []),
    }
    if version.source.startswith("models:/m-"):
        out["model_id"] = version.source.removeprefix("models:/").strip("/")
    return out


def registered_model(model: RegisteredModel, *, aliases: dict[str, int], latest: list[ModelVersion]) -> dict[str, Any]:
    by_version: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(number, []).append(alias)
    return {
        "name": model.name,
        "creation_timestamp": _ms(model.created_at),
        "last_updated_timestamp": _ms(model.updated_at),
        "description": model.description,
        "latest_versions": [model_version(v, by_version.get(v.version), model.name) for v in latest],
        "tags": _tags(model.tags),
        "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(aliases.items())],
    }
