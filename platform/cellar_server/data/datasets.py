"""Recording data sets and the runs that read them (from the SDK and from MLflow's log-inputs)."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction

from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.data.models import Dataset, DatasetInput
from cellar_server.teams.models import Team

DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|etag:[^\s]{1,150}|version:[^\s]{1,150}|mlflow:[^\s]{1,150})$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
KINDS = ("sql", "s3", "file", "http", "mlflow")
MAX_SCHEMA_CHARS = 100_000


def _text(value: Any, field: str, limit: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise ServiceError(
            "invalid_dataset", f"'{field}' is a {'non-empty ' if required else ''}string of at most {limit} characters."
        )
    return value


def dataset_fields(data: Any) -> dict[str, Any]:
    """Validated fields of one data set version, from JSON."""
    if not isinstance(data, dict):
        raise ServiceError("invalid_dataset", "A data set is a JSON object with name, uri and digest.")
    digest = _text(data.get("digest"), "digest", 200)
    if not DIGEST.match(digest):
        raise ServiceError(
            "invalid_dataset", "'digest' is 'sha256:<64 hex>', 'etag:<etag>', 'version:<id>' or 'mlflow:<digest>'."
        )
    kind = data.get("kind") or "file"
    if kind not in KINDS:
        raise ServiceError("invalid_dataset", f"'kind' is one of {', '.join(KINDS)}.")
    size = data.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ServiceError("invalid_dataset", "'size' is a whole number of bytes.")
    snapshot = data.get("snapshot") or ""
    if snapshot and not SHA256.match(snapshot):
        raise ServiceError("invalid_dataset", "'snapshot' is the sha256 hex digest of the stored bytes.")
    schema, profile = data.get("schema") or {}, data.get("profile") or {}
    if not isinstance(schema, dict) or not isinstance(profile, dict):
        raise ServiceError("invalid_dataset", "'schema' and 'profile' are JSON objects.")
    if len(repr(schema)) + len(repr(profile)) > MAX_SCHEMA_CHARS:
        raise ServiceError("invalid_dataset", "'schema' and 'profile' together are too large (100,000 characters).")
    return {
        "name": _text(data.get("name"), "name", 250),
        "uri": _text(data.get("uri"), "uri", 2000),
        "digest": digest,
        "kind": kind,
        "size": size,
        "schema": schema,
        "profile": profile,
        "snapshot": snapshot,
    }


def _upsert(team: Team, fields: dict[str, Any], source: str) -> Dataset:
    with team_scope(team.id):
        found = Dataset.objects.filter(uri=fields["uri"], digest=fields["digest"]).first()
    if found is not None:
        if fields["snapshot"] and not found.snapshot:
            found.snapshot = fields["snapshot"]
            found.save(update_fields=["snapshot"])
        return found
    try:
        with transaction.atomic():
            return Dataset.all_teams.create(team=team, source=source, **fields)
    except IntegrityError:  # a concurrent writer recorded the same version first
        with team_scope(team.id):
            return Dataset.objects.get(uri=fields["uri"], digest=fields["digest"])


@transaction.atomic
def dataset_record(*, team: Team, data: Any, run=None, context: str = "", source: str = "cellar") -> Dataset:
    """Record a data set version and, with `run` (a tracking Run of the team), that the run read it."""
    fields = dataset_fields(data)
    context = _text(context, "context", 100, required=False)
    dataset = _upsert(team, fields, source)
    if run is not None:
        if run.team_id != team.id:
            raise ServiceError("run_not_found", "No such run in this team.", status_code=404)
        DatasetInput.all_teams.get_or_create(team=team, dataset=dataset, run=run, context=context)
    return dataset


def mlflow_inputs_record(*, team: Team, run, datasets: list[Any]) -> list[Dataset]:
    """MLflow's `runs/log-inputs`: [{"dataset": {name, digest, source_type, source, schema, profile},
    "tags": [{"key": "mlflow.data.context", "value": "training"}]}]."""
    if not isinstance(datasets, list):
        raise ServiceError("invalid_dataset", "'datasets' is a list.")
    recorded = []
    for item in datasets:
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise ServiceError("invalid_dataset", "Each input is {'dataset': {...}, 'tags': [...]}.")
        ds = item["dataset"]
        tags = {t.get("key"): t.get("value") for t in item.get("tags") or [] if isinstance(t, dict)}
        profile = _json_object(ds.get("profile"))
        data = {
            "name": ds.get("name") or "dataset",
            "uri": _mlflow_uri(ds),
            "digest": f"mlflow:{ds.get('digest') or ''}",
            "kind": "mlflow",
            "schema": _json_object(ds.get("schema")),
            "profile": {**profile, "source_type": ds.get("source_type", "")},
        }
        recorded.append(
            dataset_record(
                team=team, data=data, run=run, context=tags.get("mlflow.data.context") or "", source="mlflow"
            )
        )
    return recorded


def _mlflow_uri(ds: dict[str, Any]) -> str:
    import json

    raw = ds.get("source") or ""
    try:
        source = json.loads(raw) if isinstance(raw, str) and raw.startswith("{") else {}
    except ValueError:
        source = {}
    for key in ("uri", "url", "path", "table_name"):
        if isinstance(source.get(key), str) and source[key]:
            return source[key]
    return f"mlflow:{ds.get('source_type') or 'unknown'}:{ds.get('name') or 'dataset'}"


def _json_object(raw: Any) -> dict[str, Any]:
    import json

    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        try:
            value = json.loads(raw)
        except ValueError:
            return {"text": raw[:10_000]}
        return value if isinstance(value, dict) else {"value": value}
    return {}
