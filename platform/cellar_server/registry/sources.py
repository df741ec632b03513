"""Where a version's files come from: a source URI resolved to the team's artifact tree.

Accepted sources (what the mlflow client and Cellar's SDK send):
- `models:/m-<id>`            an MLflow 3 logged model (its artifact location)
- `runs:/<run_id>/<path>`     a directory of a tracking run's artifacts
- `mlflow-artifacts:/<path>`  a path in the team's artifact tree
- `models:/<name>/<version>`  another registered version (its files, pointer for pointer)

The files are the tracking app's ArtifactFile rows under the resolved prefix; the version keeps
relpath -> sha256 so the blobs stay put whatever happens to the paths later. The MLmodel file is
parsed as YAML (safe_load: data only, no user code runs on the web process).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from cellar.models.flavors import MLMODEL, ModelFormatError, flavor_name
from cellar_server.core.scoping import team_scope
from cellar_server.registry.errors import RegistryError, invalid
from cellar_server.teams.models import Team
from cellar_server.tracking.models import ArtifactFile, LoggedModel, Run
from cellar_server.tracking.services.artifacts import artifact_store

ARTIFACTS_SCHEME = "mlflow-artifacts:/"
_RUNS = re.compile(r"^runs:/([0-9a-f]{32})(?:/(.*))?$")
_LOGGED = re.compile(r"^models:/(m-[0-9a-f]+)/?$")
_REGISTERED = re.compile(r"^models:/([^/@]+)/([0-9]+)/?$")


@dataclass(frozen=True)
class ResolvedSource:
    artifact_path: str  # prefix in the team's artifact tree (a copy keeps its original's)
    files: dict[str, str]
    run: Run | None
    flavor: str
    signature: dict | None


def _strip(location: str) -> str:
    return location[len(ARTIFACTS_SCHEME) :].strip("/") if location.startswith(ARTIFACTS_SCHEME) else ""


def _prefix_and_run(team: Team, source: str) -> tuple[str, Run | None]:
    if any(part in ("..", ".") for part in source.split("/")[1:]):
        raise invalid(f"Cannot register from '{source}': the path may not contain '.' or '..' segments.")
    with team_scope(team.id):
        if match := _LOGGED.match(source):
            logged = LoggedModel.objects.select_related("source_run").filter(model_id=match.group(1)).first()
            if logged is None:
                raise invalid(f"No logged model '{match.group(1)}' in this team.")
            return _strip(logged.artifact_location), logged.source_run
        if match := _RUNS.match(source):
            run = Run.objects.filter(run_uuid=match.group(1)).first()
            if run is None:
                raise invalid(f"No run '{match.group(1)}' in this team.")
            return "/".join(p for p in (_strip(run.artifact_uri), (match.group(2) or "").strip("/")) if p), run
    if source.startswith(ARTIFACTS_SCHEME):
        return _strip(source), None
    raise invalid(
        f"Cannot register from '{source}': Cellar registers files in its artifact store. Use runs:/<run_id>/<path>, "
        "models:/m-<id> (mlflow.<flavor>.log_model) or mlflow-artifacts:/<path>."
    )


def files_under(team: Team, prefix: str) -> dict[str, str]:
    start = f"{prefix}/" if prefix else ""
    with team_scope(team.id):
        rows = ArtifactFile.objects.filter(path__startswith=start).values_list("path", "sha256")
        return {path[len(start) :]: sha for path, sha in rows}


def model_metadata(team: Team, files: dict[str, str]) -> tuple[str, dict | None]:
    """(flavor, signature) from the MLmodel file among `files`."""
    sha = files.get(MLMODEL)
    if sha is None:
        raise RegistryError("no_model_files", "The source has no MLmodel file: log it with mlflow or cellar first.")
    try:
        mlmodel = yaml.safe_load(artifact_store().get_blob(team.slug, sha)) or {}
        flavor = flavor_name(mlmodel)
    except (yaml.YAMLError, ModelFormatError, AttributeError) as exc:
        raise RegistryError("no_model_files", f"The MLmodel file cannot be read: {exc}") from None
    signature = mlmodel.get("signature")
    return flavor, signature if isinstance(signature, dict) else None


def resolve_source(team: Team, source: str, *, copy_of: Any = None) -> ResolvedSource:
    if copy_of is not None:
        # Same blobs; the download URI is the original's place in the artifact tree.
        return ResolvedSource(
            copy_of.artifact_path, dict(copy_of.files), copy_of.run, copy_of.flavor, copy_of.signature
        )
    prefix, run = _prefix_and_run(team, source)
    files = files_under(team, prefix)
    if not files:
        raise RegistryError("no_model_files", f"No files at '{source}' (artifact path '{prefix}').")
    flavor, signature = model_metadata(team, files)
    return ResolvedSource(prefix, files, run, flavor, signature)


def registered_source(source: str) -> tuple[str, int] | None:
    """(name, version) when the source names another registered version."""
    match = _REGISTERED.match(source)
    return (match.group(1), int(match.group(2))) if match else None
