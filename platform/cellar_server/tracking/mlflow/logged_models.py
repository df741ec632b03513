"""MLflow 3 logged models: the records `mlflow.<flavor>.log_model` creates and finalizes."""

from __future__ import annotations

import uuid

from cellar_server.core.scoping import team_scope
from cellar_server.tracking import validation as v
from cellar_server.tracking.errors import invalid, missing
from cellar_server.tracking.mlflow.auth import Caller
from cellar_server.tracking.mlflow.protocol import Fields
from cellar_server.tracking.models import DELETED, LoggedModel
from cellar_server.tracking.services import experiments, runs
from cellar_server.tracking.services.artifacts import artifact_list, join

STATUSES = {"LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"}


def _payload(model: LoggedModel) -> dict:
    info = {
        "model_id": model.model_id,
        "experiment_id": str(model.experiment.number),
        "name": model.name,
        "creation_timestamp_ms": model.creation_timestamp_ms,
        "last_updated_timestamp_ms": model.last_updated_timestamp_ms,
        "artifact_uri": model.artifact_location,
        "status": model.status,
        "creator_id": int(model.creator) if model.creator.isdigit() else 0,
        "model_type": model.model_type,
        "status_message": model.status_message,
        "tags": [{"key": k, "value": val} for k, val in sorted(model.tags.items())],
    }
    if model.source_run_id:
        info["source_run_id"] = model.source_run.run_uuid
    return {"info": info, "data": {"params": [{"key": k, "value": val} for k, val in sorted(model.params.items())]}}


def _get(caller: Caller, model_id: str) -> LoggedModel:
    with team_scope(caller.team.id):
        model = (
            LoggedModel.objects.select_related("experiment", "source_run")
            .filter(model_id=model_id)
            .exclude(lifecycle_stage=DELETED)
            .first()
        )
    if model is None:
        raise missing(f"Logged model with ID '{model_id}' not found.")
    return model


def _pairs(items: list, what: str) -> dict[str, str]:
    return {v.validate_key(i.get("key"), what): str(i.get("value", "")) for i in items}


def create(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get(team=caller.team, experiment_id=f.required("experiment_id"))
    source_run = runs.run_get(team=caller.team, run_id=f.get("source_run_id")) if f.get("source_run_id") else None
    model_id = f"m-{uuid.uuid4().hex}"
    now = experiments.now_ms()
    model = LoggedModel.all_teams.create(
        team=caller.team,
        model_id=model_id,
        experiment=exp,
        source_run=source_run,
        name=(f.get("name") or model_id)[:250],
        model_type=(f.get("model_type") or "")[:100],
        artifact_location=f"mlflow-artifacts:/{exp.number}/models/{model_id}/artifacts",
        creator=str(caller.user.pk),
        tags=_pairs(f.list("tags"), "tag"),
        params=_pairs(f.list("params"), "param"),
        creation_timestamp_ms=now,
        last_updated_timestamp_ms=now,
    )
    return {"model": _payload(model)}


def get(caller: Caller, f: Fields, model_id: str) -> dict:
    return {"model": _payload(_get(caller, model_id))}


def finalize(caller: Caller, f: Fields, model_id: str) -> dict:
    model = _get(caller, model_id)
    status = f.required("status")
    if status not in STATUSES:
        raise invalid(f"Invalid logged model status '{status}'.")
    model.status = status
    model.last_updated_timestamp_ms = experiments.now_ms()
    model.save(update_fields=["status", "last_updated_timestamp_ms"])
    return {"model": _payload(model)}


def delete(caller: Caller, f: Fields, model_id: str) -> dict:
    model = _get(caller, model_id)
    model.lifecycle_stage = DELETED
    model.save(update_fields=["lifecycle_stage"])
    return {}


def set_tags(caller: Caller, f: Fields, model_id: str) -> dict:
    model = _get(caller, model_id)
    model.tags = {**model.tags, **_pairs(f.list("tags"), "tag")}
    model.last_updated_timestamp_ms = experiments.now_ms()
    model.save(update_fields=["tags", "last_updated_timestamp_ms"])
    return {}


def delete_tag(caller: Caller, f: Fields, model_id: str, tag_key: str) -> dict:
    model = _get(caller, model_id)
    if tag_key not in model.tags:
        raise missing(f"No tag with key '{tag_key}' on logged model '{model_id}'.")
    model.tags = {k: val for k, val in model.tags.items() if k != tag_key}
    model.save(update_fields=["tags"])
    return {}


def log_params(caller: Caller, f: Fields, model_id: str) -> dict:
    model = _get(caller, model_id)
    model.params = {**model.params, **_pairs(f.list("params"), "param")}
    model.save(update_fields=["params"])
    return {}


def search(caller: Caller, f: Fields) -> dict:
    numbers = [v.parse_int(e, "experiment_ids", required=True) for e in f.list("experiment_ids")]
    with team_scope(caller.team.id):
        queryset = LoggedModel.objects.select_related("experiment", "source_run").exclude(lifecycle_stage=DELETED)
    if numbers:
        queryset = queryset.filter(experiment__number__in=numbers)
    max_results = v.parse_int(f.get("max_results"), "max_results", default=100)
    return {"models": [_payload(m) for m in queryset.order_by("-creation_timestamp_ms")[:max_results]]}


def list_artifacts(caller: Caller, f: Fields, model_id: str) -> dict:
    model = _get(caller, model_id)
    root = model.artifact_location.removeprefix("mlflow-artifacts:/")
    relative = v.normalize_artifact_path(f.get("artifact_directory_path") or "")
    entries = artifact_list(team=caller.team, directory=join(root, relative))
    return {
        "root_uri": model.artifact_location,
        "files": [{"path": join(relative, e.path), "is_dir": e.is_dir, "file_size": e.file_size or 0} for e in entries],
    }
