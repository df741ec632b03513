"""The worker API: what pool agents call while they run tasks (sdk/cellar/pipelines/wire.py).

    POST /api/v1/engine/claims/      {"worker", "tasks": [Lease]}         -> {"claimed", "refused"}
    POST /api/v1/engine/heartbeats/  {"worker", "tasks": [Lease]}         -> {"alive", "cancel", "stale"}
    POST /api/v1/engine/results/     {"worker", "results": [TaskReport]}  -> {"accepted", "refused"}

No session, no CSRF, no API token: each entry carries its task's token, signed by this server
for that task and lease (engine/tokens.py), which authorizes that task alone. An entry with a
bad token is refused on its own; the rest of the request is applied. Parsing is by hand, not
DRF serializers: a result batch of hundreds of tasks is the engine's hot path.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cellar.pipelines.wire import CANCELLED, FAILED, LIVE_LOG_BYTES, SUCCEEDED, Lease, TaskReport
from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.engine import results

MAX_ENTRIES = 2000
STATES = (SUCCEEDED, FAILED, CANCELLED)
ERROR = OpenApiResponse(description='{"error": {"code", "message"}}: the body is not what the wire contract says')


def _invalid(message: str) -> ServiceError:
    return ServiceError("invalid_engine_request", message)


def _body(request: Request, key: str) -> tuple[str, list[dict[str, Any]]]:
    data = request.data
    if not isinstance(data, dict):
        raise _invalid(f'Send a JSON object: {{"worker": "...", "{key}": [...]}}.')
    worker = data.get("worker")
    if not isinstance(worker, str) or not worker.strip() or len(worker) > 200:
        raise _invalid("'worker' must name the agent (1 to 200 characters), like 'host:pid'.")
    entries = data.get(key)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _invalid(f"'{key}' must be a list of objects.")
    if len(entries) > MAX_ENTRIES:
        raise _invalid(f"At most {MAX_ENTRIES} entries per request; got {len(entries)}. Send them in parts.")
    return worker.strip(), entries


def _lease_fields(entry: dict[str, Any], position: int) -> dict[str, Any]:
    task, lease, token = entry.get("task"), entry.get("lease"), entry.get("token")
    if not isinstance(task, int) or isinstance(task, bool) or task < 1:
        raise _invalid(f"entry {position}: 'task' must be the task id (a positive integer).")
    if not isinstance(lease, str) or not lease or len(lease) > 64:
        raise _invalid(f"entry {position}: 'lease' must be the lease the task came with.")
    if not isinstance(token, str) or not token or len(token) > 2000:
        raise _invalid(f"entry {position}: 'token' must be the token the task came with.")
    return {"task": task, "lease": lease, "token": token}


def _leases(entries: list[dict[str, Any]]) -> list[Lease]:
    leases = []
    for i, entry in enumerate(entries):
        started_at = entry.get("started_at")
        if started_at is not None and (isinstance(started_at, bool) or not isinstance(started_at, int | float)):
            raise _invalid(f"entry {i}: 'started_at' must be unix seconds or null.")
        logs = entry.get("logs")
        if logs is not None and (
            not isinstance(logs, dict)
            or not all(k in ("stdout", "stderr") and isinstance(v, str) for k, v in logs.items())
        ):
            raise _invalid(f'entry {i}: \'logs\' must be null or {{"stdout": text, "stderr": text}}.')
        if logs:
            logs = {k: v[-LIVE_LOG_BYTES:] for k, v in logs.items()}
        leases.append(Lease(**_lease_fields(entry, i), started_at=started_at, logs=logs or None))
    return leases


def _reports(entries: list[dict[str, Any]]) -> list[TaskReport]:
    reports = []
    for i, entry in enumerate(entries):
        fields = _lease_fields(entry, i)
        state = entry.get("state")
        if state not in STATES:
            raise _invalid(f"entry {i}: 'state' must be one of {', '.join(STATES)}; got {state!r}.")
        outputs, logs = entry.get("outputs"), entry.get("logs")
        outputs, logs = {} if outputs is None else outputs, {} if logs is None else logs
        items, error = entry.get("items"), entry.get("error")
        if not isinstance(outputs, dict) or not isinstance(logs, dict):
            raise _invalid(f"entry {i}: 'outputs' and 'logs' must be objects (name -> artifact reference).")
        if items is not None and not isinstance(items, list):
            raise _invalid(f"entry {i}: 'items' must be a list of artifact references.")
        if error is not None and not isinstance(error, dict):
            raise _invalid(f"entry {i}: 'error' must be an object.")
        times = {}
        for name in ("started_at", "ended_at"):
            value = entry.get(name)
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise _invalid(f"entry {i}: '{name}' must be unix seconds.")
            times[name] = value
        reports.append(TaskReport(**fields, state=state, outputs=outputs, items=items, error=error, logs=logs, **times))
    return reports


class EngineApi(APIView):
    """Authenticated per entry by task tokens; nothing else (so no CSRF either)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]


class ClaimsApi(EngineApi):
    @extend_schema(
        request=None,
        responses={200: OpenApiResponse(description='{"claimed": [id], "refused": {id: reason}}'), 400: ERROR},
        description="Claim dispatched tasks before running them: the first claim of a lease wins.",
    )
    def post(self, request: Request) -> Response:
        worker, entries = _body(request, "tasks")
        return Response(results.tasks_claim(worker=worker, leases=_leases(entries)))


class HeartbeatsApi(EngineApi):
    @extend_schema(
        request=None,
        responses={200: OpenApiResponse(description='{"alive": [id], "cancel": [id], "stale": [id]}'), 400: ERROR},
        description="Keep the leases of running tasks alive; the answer says which to stop.",
    )
    def post(self, request: Request) -> Response:
        worker, entries = _body(request, "tasks")
        return Response(results.tasks_heartbeat(worker=worker, leases=_leases(entries)))


class ResultsApi(EngineApi):
    @extend_schema(
        request=None,
        responses={200: OpenApiResponse(description='{"accepted": [id], "refused": {id: reason}}'), 400: ERROR},
        description="Report finished tasks: outputs by reference, or the failure. Stale leases are refused.",
    )
    def post(self, request: Request) -> Response:
        worker, entries = _body(request, "results")
        return Response(results.tasks_report(worker=worker, reports=_reports(entries)))
