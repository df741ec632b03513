"""Reads from the registry, including the two contracts serving builds on.

- `model_version_get(team=, name=, version= | alias=)` -> ModelVersion (RegistryError not_found)
- `model_version_manifest(team=, version_id=)` -> what the serve process needs, no DB on its side:

      {"id": "17", "model": "churn", "version": 3, "flavor": "sklearn",
       "signature": {"inputs": "[…]", "outputs": "[…]", "params": null} | None,
       "files": {"MLmodel": "<sha256>", "model.pkl": "<sha256>", …},
       "profile": {…reference profile…} | None}

  Blobs live at `teams/<team>/data/<sha[:2]>/<sha>` (`cellar.artifacts.blob_key`); write them under
  one folder by relpath and `cellar.models.load_model(folder)` loads the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, QuerySet

from cellar_server.core.scoping import team_scope
from cellar_server.registry.errors import RegistryError, invalid, not_found
from cellar_server.registry.models import AliasMove, ModelAlias, ModelVersion, RegisteredModel
from cellar_server.teams.models import Team


def model_list(*, team: Team, search: str = "") -> QuerySet[RegisteredModel]:
    with team_scope(team.id):
        queryset = RegisteredModel.objects.annotate(version_count=Count("versions")).order_by("name")
        if search:
            queryset = queryset.filter(name__icontains=search)
        return queryset


def model_for_name(*, team: Team, name: str) -> RegisteredModel:
    with team_scope(team.id):
        model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise not_found(f"Registered Model with name={name} not found")
    return model


def versions_for(*, team: Team, model: RegisteredModel) -> QuerySet[ModelVersion]:
    with team_scope(team.id):
        return ModelVersion.objects.filter(model=model).order_by("-version")


def aliases_by_version(*, team: Team, models: Iterable[RegisteredModel]) -> dict[int, list[str]]:
    """version pk -> alias names, for several models in one query."""
    return _alias_names(team, model__in=list(models))


def aliases_for_versions(*, team: Team, version_ids: Iterable[int]) -> dict[int, list[str]]:
    """version pk -> alias names, for versions of any models (a deployment's routes), in one query."""
    return _alias_names(team, version_id__in=list(version_ids))


def _alias_names(team: Team, **lookup) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    with team_scope(team.id):
        for version_id, alias in ModelAlias.objects.filter(**lookup).values_list("version_id", "alias"):
            out.setdefault(version_id, []).append(alias)
    return {k: sorted(v) for k, v in out.items()}


def alias_maps(*, team: Team, models: Iterable[RegisteredModel]) -> dict[int, dict[str, int]]:
    """model pk -> {alias: version number}, for a page of models in one query."""
    out: dict[int, dict[str, int]] = {m.pk: {} for m in models}
    with team_scope(team.id):
        rows = ModelAlias.objects.filter(model_id__in=list(out)).values_list("model_id", "alias", "version__version")
        for model_id, alias, number in rows:
            out[model_id][alias] = number
    return out


def alias_map(*, team: Team, model: RegisteredModel) -> dict[str, int]:
    """alias -> version number."""
    with team_scope(team.id):
        return dict(ModelAlias.objects.filter(model=model).values_list("alias", "version__version"))


def model_version_get(*, team: Team, name: str, version: Any = None, alias: str | None = None) -> ModelVersion:
    """A version by number or by alias (exactly one of them)."""
    if (version is None) == (alias is None):
        raise invalid("Name a version by number or by alias (one of them).")
    with team_scope(team.id):
        if alias is not None:
            holder = ModelAlias.objects.select_related("version__model").filter(model__name=name, alias=alias).first()
            if holder is None:
                if not RegisteredModel.objects.filter(name=name).exists():
                    raise not_found(f"Registered Model with name={name} not found")
                raise RegistryError("alias_not_found", f"Registered model alias {alias} not found.")
            return holder.version
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise invalid(f"Version must be an integer, got '{version}'.") from None
        found = ModelVersion.objects.select_related("model").filter(model__name=name, version=number).first()
    if found is None:
        raise not_found(f"Model Version (name={name}, version={number}) not found")
    return found


def model_version_for_ref(*, team: Team, ref: str) -> ModelVersion:
    """`name@alias`, `name/3`, `name:3` or `name` (its latest version)."""
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        return model_version_get(team=team, name=name, alias=alias)
    for sep in ("/", ":"):
        if sep in ref:
            name, version = ref.rsplit(sep, 1)
            return model_version_get(team=team, name=name, version=version)
    with team_scope(team.id):
        latest = ModelVersion.objects.select_related("model").filter(model__name=ref).order_by("-version").first()
    if latest is None:
        raise not_found(f"Registered Model with name={ref} not found")
    return latest


def manifest_of(version: ModelVersion) -> dict[str, Any]:
    return {
        "id": str(version.pk),
        "model": version.model.name,
        "version": version.version,
        "flavor": version.flavor,
        "signature": version.signature,
        "files": dict(version.files),
        "profile": version.profile,
    }


def model_version_manifest(*, team: Team, version_id: str | int) -> dict[str, Any] | None:
    """The serve process's view of a version (see the module docstring); None when the team has none."""
    try:
        pk = int(version_id)
    except (TypeError, ValueError):
        return None
    with team_scope(team.id):
        version = ModelVersion.objects.select_related("model").filter(pk=pk).first()
    return manifest_of(version) if version is not None else None


def alias_moves(*, team: Team, model: RegisteredModel, limit: int = 100) -> list[AliasMove]:
    with team_scope(team.id):
        return list(AliasMove.objects.filter(model=model).order_by("-created_at", "-id")[:limit])


def metrics_across_versions(*, team: Team, model: RegisteredModel) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(version, value)] in version order, for the model page's chart."""
    series: dict[str, list[tuple[int, float]]] = {}
    with team_scope(team.id):
        rows = ModelVersion.objects.filter(model=model).order_by("version").values_list("version", "metrics")
        for number, metrics in rows:
            for key, value in sorted((metrics or {}).items()):
                series.setdefault(key, []).append((number, value))
    return series


# --- retention: model versions keep their blobs and their source runs -------------------------


def live_blob_hashes(team: Team, cut: Any) -> Iterable[str]:
    """Every blob a version names; versions are never expired, so the retention cut is ignored."""
    with team_scope(team.id):
        for files in ModelVersion.objects.values_list("files", flat=True).iterator():
            yield from (files or {}).values()


def kept_source_runs(team: Team) -> Iterable[str]:
    with team_scope(team.id):
        return list(ModelVersion.objects.exclude(run_uuid="").values_list("run_uuid", flat=True).distinct())


def model_version_by_number(*, team: Team, name: str, version: Any) -> ModelVersion:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise invalid(f"Version must be an integer, got '{version}'.") from None
    with team_scope(team.id):
        found = ModelVersion.objects.select_related("model").filter(model__name=name, version=number).first()
    if found is None:
        raise not_found(f"Model Version (name={name}, version={number}) not found")
    return found
