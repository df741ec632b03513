"""Cellar's tracking rows as MLflow's proto-JSON messages."""

from __future__ import annotations

from cellar_server.tracking.mlflow.protocol import proto_double
from cellar_server.tracking.models import Experiment, Run


def experiment(exp: Experiment) -> dict:
    return {
        "experiment_id": str(exp.number),
        "name": exp.name,
        "artifact_location": exp.artifact_location,
        "lifecycle_stage": exp.lifecycle_stage,
        "creation_time": exp.creation_time,
        "last_update_time": exp.last_update_time,
        "tags": [{"key": t.key, "value": t.value} for t in exp.tags.all()],
    }


def run_info(run: Run) -> dict:
    info = {
        "run_id": run.run_uuid,
        "run_uuid": run.run_uuid,
        "run_name": run.name,
        "experiment_id": str(run.experiment.number),
        "user_id": run.user_name,
        "status": run.status,
        "start_time": run.start_time,
        "artifact_uri": run.artifact_uri,
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def metric(key: str, value: float, is_nan: bool, timestamp: int, step: int) -> dict:
    return {"key": key, "value": proto_double(value, is_nan), "timestamp": timestamp, "step": step}


def run(run: Run, *, model_outputs: list[dict] | None = None) -> dict:
    """A run with params, tags and latest metrics (prefetched by selectors.runs_with_data when listing)."""
    payload = {
        "info": run_info(run),
        "data": {
            "metrics": [metric(m.key, m.value, m.is_nan, m.timestamp, m.step) for m in run.latest_metrics.all()],
            "params": [{"key": p.key, "value": p.value} for p in run.params.all()],
            "tags": [{"key": t.key, "value": t.value} for t in run.tags.all()],
        },
        "inputs": {},
    }
    if model_outputs:
        payload["outputs"] = {"model_outputs": model_outputs}
    return payload
