"""This app's doors into serving and the registry, through their services and selectors only.

Kept in one place so the A/B-test code reads the same whether or not the registry app is
installed yet (a version the registry cannot resolve is "unknown", never a crash).
"""

from __future__ import annotations

from typing import Any

from cellar_server.core.exceptions import ServiceError
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team

CHAMPION = "champion"


def deployment_get(*, team: Team, name: str):
    from cellar_server.core.scoping import team_scope
    from cellar_server.serving.selectors import deployment_get as get

    with team_scope(team.id):
        return get(team=team, name=name)


def deployment_routes(*, deployment) -> list[dict[str, Any]]:
    return [{"version_id": r.version_id, "weight": r.weight} for r in deployment.routes.all()]


def version_info(*, team: Team, version_id: str) -> dict[str, Any] | None:
    """{"id", "model", "version", ...} for a version of this team, else None."""
    from cellar_server.serving.versions import version_manifest

    return version_manifest(team=team, version_id=str(version_id))


def version_url(*, team: Team, info: dict[str, Any] | None) -> str | None:
    """The registry page of the version `version_info` described, or None when it has no name."""
    from cellar_server.serving.versions import version_url as url

    return url(team_slug=team.slug, manifest=info)


def label_versions(*, team: Team, items: list[Any]) -> None:
    """Sets `label` ("churn v2", else "version <id>") on objects with a `version_id`."""
    from cellar_server.serving.versions import label_versions as label

    label(team, items)


def champion_version_id(*, team: Team, model: str) -> str | None:
    try:
        from cellar_server.registry.selectors import model_version_get
    except ImportError:
        return None
    try:
        version = model_version_get(team=team, name=model, alias=CHAMPION)
    except Exception:  # noqa: BLE001 - no champion yet, whatever the registry raises for it
        return None
    return str(version.pk) if version is not None else None


def route_all_traffic(*, team: Team, actor: Actor, deployment_name: str, version_id: str) -> None:
    from cellar_server.core.scoping import team_scope
    from cellar_server.serving.services import deployment_update

    deployment = deployment_get(team=team, name=deployment_name)
    if deployment is None:
        raise ServiceError("deployment_gone", f"The deployment '{deployment_name}' no longer exists.", status_code=409)
    with team_scope(team.id):
        deployment_update(
            team=team, actor=actor, deployment=deployment, routes=[{"version_id": version_id, "weight": 1}]
        )


def move_champion(*, team: Team, actor: Actor, model: str, version_id: str, reason: str | None) -> bool:
    """Point the model's `champion` alias at the winner; False when there is no registry to move."""
    try:
        from cellar_server.registry.services import model_alias_set
    except ImportError:
        return False
    from cellar_server.registry.selectors import model_for_name

    info = version_info(team=team, version_id=version_id) or {}
    registered = model_for_name(team=team, name=model)
    model_alias_set(
        team=team, actor=actor, model=registered, alias=CHAMPION, version=info.get("version"), reason=reason
    )
    return True
