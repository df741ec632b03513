"""Cellar's tracking rows as MLflow's proto-JSON messages."""

from __future__ import annotations

import json

from cellar_server.tracking.mlflow.protocol import proto_double
from cellar_server.tracking.models import Experiment, Run
from cellar_server.tracking.selectors import RunData


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


def run_info_row(row: tuple, experiment_number: int) -> dict:
    """run_info from a row of selectors.RUN_INFO_COLUMNS (searches read rows, not models)."""
    _, run_uuid, name, _, user_name, status, start_time, end_time, artifact_uri, lifecycle_stage = row
    info = {
        "run_id": run_uuid,
        "run_uuid": run_uuid,
        "run_name": name,
        "experiment_id": str(experiment_number),
        "user_id": user_name,
        "status": status,
        "start_time": start_time,
        "artifact_uri": artifact_uri,
        "lifecycle_stage": lifecycle_stage,
    }
    if end_time is not None:
        info["end_time"] = end_time
    return info


def metric(key: str, value: float, is_nan: bool, timestamp: int, step: int) -> dict:
    return {"key": key, "value": proto_double(value, is_nan), "timestamp": timestamp, "step": step}


def run(run: Run, data: RunData, *, model_outputs: list[dict] | None = None) -> dict:
    """A run with its params, tags and latest metrics (selectors.run_data_for)."""
    payload = {"info": run_info(run), "data": run_data(data), "inputs": {}}
    if model_outputs:
        payload["outputs"] = {"model_outputs": model_outputs}
    return payload


def run_row(row: tuple, experiment_number: int, data: RunData) -> dict:
    """A searched run: its row (selectors.RUN_INFO_COLUMNS) and its data."""
    return {"info": run_info_row(row, experiment_number), "data": run_data(data), "inputs": {}}


def run_data(data: RunData) -> dict:
    return {
        "metrics": [metric(k, value, is_nan, ts, step) for k, value, is_nan, ts, step in data.metrics],
        "params": [{"key": k, "value": value} for k, value in data.params],
        "tags": [{"key": k, "value": value} for k, value in data.tags],
    }


def history_json(key: str, points: list[tuple], next_page_token: str | None) -> str:
    """get-history's body written directly: 100,000 points serialize in a fraction of json.dumps' time."""
    key_json = json.dumps(key)
    parts = [
        f'{{"key":{key_json},"value":{_json_double(value, is_nan)},"timestamp":{ts},"step":{step}}}'
        for value, is_nan, ts, step in points
    ]
    body = '{"metrics":[' + ",".join(parts) + "]"
    if next_page_token:
        body += f',"next_page_token":{json.dumps(next_page_token)}'
    return body + "}"


def _json_double(value: float, is_nan: bool) -> str:
    double = proto_double(value, is_nan)
    return f'"{double}"' if isinstance(double, str) else repr(double)
