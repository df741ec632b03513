"""The MLflow REST surface under /t/<team>/mlflow/: one dispatcher, MLflow's errors.

`MLFLOW_TRACKING_URI=http://host/t/<team>/mlflow` with MLFLOW_TRACKING_TOKEN set
lets an unmodified `mlflow` client log to the team.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.http import FileResponse, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from cellar_server.tracking.errors import (
    ENDPOINT_NOT_FOUND,
    INTERNAL_ERROR,
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    TrackingError,
    invalid,
)
from cellar_server.tracking.mlflow import handlers as h
from cellar_server.tracking.mlflow import logged_models as lm
from cellar_server.tracking.mlflow.auth import Caller, authenticate
from cellar_server.tracking.mlflow.protocol import Fields, error_response, json_response
from cellar_server.tracking.services import artifacts

logger = logging.getLogger(__name__)
READ, WRITE = h.READ, h.WRITE

# (method, path under api/<version>/mlflow/, handler, scope). Path groups become handler arguments.
ROUTES: list[tuple[str, str, Callable, str]] = [
    ("POST", "experiments/create", h.experiment_create, WRITE),
    ("GET", "experiments/get", h.experiment_get, READ),
    ("GET", "experiments/get-by-name", h.experiment_get_by_name, READ),
    ("POST", "experiments/search", h.experiment_search, READ),
    ("GET", "experiments/search", h.experiment_search, READ),
    ("POST", "experiments/delete", h.experiment_delete, WRITE),
    ("POST", "experiments/restore", h.experiment_restore, WRITE),
    ("POST", "experiments/update", h.experiment_update, WRITE),
    ("POST", "experiments/set-experiment-tag", h.experiment_set_tag, WRITE),
    ("POST", "experiments/delete-experiment-tag", h.experiment_delete_tag, WRITE),
    ("POST", "runs/create", h.run_create, WRITE),
    ("GET", "runs/get", h.run_get, READ),
    ("POST", "runs/update", h.run_update, WRITE),
    ("POST", "runs/delete", h.run_delete, WRITE),
    ("POST", "runs/restore", h.run_restore, WRITE),
    ("POST", "runs/log-metric", h.run_log_metric, WRITE),
    ("POST", "runs/log-parameter", h.run_log_param, WRITE),
    ("POST", "runs/set-tag", h.run_set_tag, WRITE),
    ("POST", "runs/delete-tag", h.run_delete_tag, WRITE),
    ("POST", "runs/log-batch", h.run_log_batch, WRITE),
    ("POST", "runs/log-inputs", h.run_log_inputs, WRITE),
    ("POST", "runs/outputs", h.run_log_outputs, WRITE),
    ("POST", "runs/search", h.run_search, READ),
    ("GET", "metrics/get-history", h.metric_history, READ),
    ("GET", "metrics/get-history-bulk-interval", h.metric_history_bulk_interval, READ),
    ("GET", "artifacts/list", h.artifacts_list, READ),
    ("POST", "logged-models", lm.create, WRITE),
    ("POST", "logged-models/search", lm.search, READ),
    ("GET", r"logged-models/(m-[0-9a-f]+)", lm.get, READ),
    ("PATCH", r"logged-models/(m-[0-9a-f]+)", lm.finalize, WRITE),
    ("DELETE", r"logged-models/(m-[0-9a-f]+)", lm.delete, WRITE),
    ("PATCH", r"logged-models/(m-[0-9a-f]+)/tags", lm.set_tags, WRITE),
    ("DELETE", r"logged-models/(m-[0-9a-f]+)/tags/(.+)", lm.delete_tag, WRITE),
    ("POST", r"logged-models/(m-[0-9a-f]+)/params", lm.log_params, WRITE),
    ("GET", r"logged-models/(m-[0-9a-f]+)/artifacts/directories", lm.list_artifacts, READ),
]
# What a pipeline step may call with its task token (cellar.log_metric and friends attach to the
# step's run: runs/get, then the logging endpoints); each checks the run is the step's own.
TASK_HANDLERS = frozenset({h.run_get, h.run_log_metric, h.run_log_param, h.run_set_tag, h.run_log_batch})
_COMPILED = [(method, re.compile(f"^{path}/?$"), handler, scope) for method, path, handler, scope in ROUTES]


def _guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """MLflow's error body for every failure; never a Django error page."""

    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except TrackingError as exc:
            return error_response(exc)
        except Exception:
            logger.exception("mlflow api error", extra={"path": request.path})
            return error_response(TrackingError(INTERNAL_ERROR, "Internal error; it has been logged."))

    wrapper.__name__ = view.__name__
    return csrf_exempt(wrapper)


@_guarded
def api(request: HttpRequest, team_slug: str, endpoint: str) -> HttpResponse:
    for method, pattern, handler, scope in _COMPILED:
        match = pattern.match(endpoint)
        if match is None or method != request.method:
            continue
        caller = authenticate(request, team_slug)
        caller.require(scope)
        if caller.run_uuid is not None and handler not in TASK_HANDLERS:
            raise TrackingError(PERMISSION_DENIED, "A pipeline step's task token only reads and logs to its own run.")
        result = handler(caller, Fields(request), *match.groups())
        return result if isinstance(result, HttpResponse) else json_response(result)
    raise TrackingError(ENDPOINT_NOT_FOUND, f"No MLflow endpoint {request.method} {endpoint}.")


ARTIFACT_CHUNK = 1024 * 1024


@_guarded
def artifact(request: HttpRequest, team_slug: str, path: str = "") -> HttpResponse:
    """mlflow-artifacts: PUT uploads, GET downloads (or lists a directory), DELETE removes."""
    caller: Caller = authenticate(request, team_slug)
    if caller.run_uuid is not None:
        _require_own_artifacts(caller, path or request.GET.get("path", ""))
    if request.method == "GET" and not path:
        caller.require(READ)
        directory = request.GET.get("path", "")
        entries = artifacts.artifact_list(team=caller.team, directory=directory)
        files = [
            {"path": e.path, "is_dir": e.is_dir, **({} if e.is_dir else {"file_size": e.file_size})} for e in entries
        ]
        return json_response({"files": files})
    if request.method == "GET":
        caller.require(READ)
        stream, row = artifacts.artifact_open(team=caller.team, path=path)
        response = FileResponse(stream, content_type="application/octet-stream")
        response["Content-Length"] = str(row.size)
        return response
    if request.method == "PUT":
        caller.require(WRITE)
        artifacts.artifact_put(team=caller.team, path=path, chunks=iter(lambda: request.read(ARTIFACT_CHUNK), b""))
        return json_response({})
    if request.method == "DELETE":
        caller.require(WRITE)
        artifacts.artifact_delete(team=caller.team, path=path)
        return json_response({})
    raise invalid(f"Method {request.method} is not supported on artifacts.")


def _require_own_artifacts(caller: Caller, path: str) -> None:
    """Artifact paths are <experiment>/<run>/artifacts/…: a task token reaches its run's only."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[1] != caller.run_uuid:
        raise TrackingError(RESOURCE_DOES_NOT_EXIST, f"No artifact '{path}' for this task token's run.")


@_guarded
def server_info(request: HttpRequest, team_slug: str) -> HttpResponse:
    authenticate(request, team_slug)
    return json_response({"store_type": "SqlStore", "workspaces_enabled": False})


def version(request: HttpRequest, team_slug: str) -> HttpResponse:
    from cellar_server.tracking.mlflow import COMPATIBLE_MLFLOW_VERSION

    return HttpResponse(COMPATIBLE_MLFLOW_VERSION, content_type="text/plain")


def health(request: HttpRequest, team_slug: str) -> HttpResponse:
    return HttpResponse("OK", content_type="text/plain")
