"""Serving's one door into the registry: a model version's manifest by id, and its page.

The registry app (helper-owned, `registry/selectors.py`) answers
`model_version_manifest(team=, version_id=) -> {"id", "model", "version", "flavor", "signature",
"files": {relpath: sha256}, "profile"}`; serving never reads registry tables itself. The A/B-test
app reaches these through its own bridges (abtests/bridges.py).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.urls import NoReverseMatch, reverse

from cellar_server.core.exceptions import ServiceError


def version_manifest(*, team, version_id: str) -> dict[str, Any] | None:
    """The version's manifest, or None when the team has no such version (or no registry yet)."""
    try:
        from cellar_server.registry.selectors import model_version_manifest
    except ImportError:
        return None
    try:
        manifest = model_version_manifest(team=team, version_id=version_id)
    except (ObjectDoesNotExist, LookupError, ValueError, ValidationError, ServiceError):
        return None
    if manifest is None:
        return None
    return {**manifest, "id": str(manifest.get("id", version_id))}


def version_url(*, team_slug: str, manifest: dict[str, Any] | None) -> str | None:
    """The registry page of a version ("/t/acme/models/churn/versions/2/") from its manifest, or None
    when it has no model name and number (or the registry's pages are not installed)."""
    if not manifest or not manifest.get("model") or manifest.get("version") is None:
        return None
    try:
        kwargs = {"team_slug": team_slug, "name": manifest["model"], "version": int(manifest["version"])}
        return reverse("registry:version", kwargs=kwargs)
    except (NoReverseMatch, TypeError, ValueError):
        return None


def version_aliases(*, team, version_ids: list[str]) -> dict[str, list[str]]:
    """version id -> its alias names (e.g. ["champion"]); ids that are not numbers have none."""
    try:
        from cellar_server.registry.selectors import aliases_for_versions
    except ImportError:
        return {}
    pks = [int(v) for v in version_ids if str(v).isdigit()]
    return {str(pk): names for pk, names in aliases_for_versions(team=team, version_ids=pks).items()}


MAX_CHOICES = 200


def version_choices(*, team) -> list[tuple[str, str]]:
    """(version id, "model vN · aliases") for the team's newest versions: the deploy forms' options."""
    try:
        from cellar_server.registry import selectors
    except ImportError:
        return []
    models = list(selectors.model_list(team=team)[:50])
    aliases = selectors.aliases_by_version(team=team, models=models)
    choices = []
    for model in models:
        for version in selectors.versions_for(team=team, model=model)[:20]:
            names = aliases.get(version.pk, [])
            label = f"{model.name} v{version.version}" + (f" · {', '.join(names)}" if names else "")
            choices.append((str(version.pk), label))
    return choices[:MAX_CHOICES]


def label_versions(team: Any, items: list[Any]) -> None:
    """Sets `label` ("churn v2", else "version <id>") on objects with a `version_id`; one lookup per version."""
    names: dict[str, str] = {}
    for item in items:
        if item.version_id not in names:
            model = version_manifest(team=team, version_id=item.version_id)
            names[item.version_id] = f"{model['model']} v{model['version']}" if model else f"version {item.version_id}"
        item.label = names[item.version_id]
