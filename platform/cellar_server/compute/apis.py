"""/api/v1/compute/…: pools (everyone reads, platform admins edit), their demand (the local
supervisor and KEDA's metrics-api trigger poll it), and worker heartbeats.

    GET   /api/v1/compute/pools/                 every pool with its demand and workers
    GET   /api/v1/compute/pools/<name>/          one pool
    PATCH /api/v1/compute/pools/<name>/          staff: min/max workers, concurrency, cpu, memory, gpus, k8s fields
    GET   /api/v1/compute/pools/<name>/demand/   {"demand", "queued", "dispatched", "running", "workers",
                                                  "desired_workers"}
    POST  /api/v1/compute/workers/heartbeats/    worker credential: what an agent reports about itself
    GET   /api/v1/teams/<team>/compute/usage/    a team's CPU-hours and GPU-hours this month vs its quota

Reading takes a signed-in user, an API token, or the worker credential (compute/credentials.py);
heartbeats take the worker credential only.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cellar_server.compute import selectors, services
from cellar_server.compute.credentials import WorkerCredentialAuthentication, is_worker
from cellar_server.compute.models import Pool
from cellar_server.core.exceptions import ServiceError
from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.teams.authentication import BearerTokenAuthentication


class IsWorker(BasePermission):
    message = "This endpoint takes the worker credential (CELLAR_WORKER_TOKEN) only."

    def has_permission(self, request, view) -> bool:
        return is_worker(request)


def pool_body(pool: Pool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "queue": pool.queue,
        "min_workers": pool.min_workers,
        "max_workers": pool.max_workers,
        "concurrency": pool.concurrency,
        "cpu": pool.cpu,
        "memory": pool.memory,
        "gpus": pool.gpus,
        "node_selector": pool.node_selector,
        "tolerations": pool.tolerations,
        "image": pool.image,
    }


def status_body(status: selectors.PoolStatus) -> dict[str, Any]:
    return {**pool_body(status.pool), **status.as_dict()}


class _ComputeApi(APIView):
    authentication_classes = [WorkerCredentialAuthentication, BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


def _status_or_404(name: str) -> selectors.PoolStatus:
    statuses = selectors.pool_statuses(name=name)
    if not statuses:
        raise exceptions.NotFound(f"No pool named '{name}'.")
    return statuses[0]


class PoolListApi(_ComputeApi):
    @extend_schema(
        summary="Every pool with its demand and live workers", responses={200: dict}, operation_id="compute_pools_list"
    )
    def get(self, request: Request) -> Response:
        results = [status_body(status) for status in selectors.pool_statuses()]
        return Response({"count": len(results), "next": None, "previous": None, "results": results})


class PoolDetailApi(_ComputeApi):
    parser_classes = [JSONParser]

    @extend_schema(summary="One pool", responses={200: dict})
    def get(self, request: Request, name: str) -> Response:
        return Response(status_body(_status_or_404(name)))

    @extend_schema(summary="Change a pool (platform admins)", request=dict, responses={200: dict})
    def patch(self, request: Request, name: str) -> Response:
        if is_worker(request):
            raise exceptions.PermissionDenied("The worker credential cannot change pools.")
        pool = selectors.pool_for_name(name=name)
        if pool is None:
            raise exceptions.NotFound(f"No pool named '{name}'.")
        if not isinstance(request.data, dict):
            raise ServiceError("invalid_pool", "Send a JSON object of the fields to change.")
        services.pool_update(user=request.user, pool=pool, **request.data)
        return Response(status_body(_status_or_404(name)))


class PoolDemandApi(_ComputeApi):
    """What an autoscaler reads: KEDA's metrics-api trigger takes `demand` (valueLocation) with a
    target of the pool's concurrency per replica; the local supervisor takes `desired_workers`."""

    @extend_schema(summary="A pool's demand (queued + dispatched + running tasks)", responses={200: dict})
    def get(self, request: Request, name: str) -> Response:
        services.pool_samples_record(pools=[name])
        return Response(_status_or_404(name).as_dict())


REPORT_FIELDS: dict[str, tuple[type, ...]] = {
    "worker": (str,),
    "pool": (str,),
    "host": (str,),
    "pid": (int,),
    "state": (str,),
    "concurrency": (int,),
    "gpus": (list,),
    "gpu_fallback": (bool,),
    "current_tasks": (int,),
    "cpu_percent": (int, float),
    "memory_percent": (int, float),
    "memory_rss": (int,),
    "started_at": (str,),
}
REQUIRED = ("worker", "pool", "host")


class WorkerHeartbeatApi(APIView):
    authentication_classes = [WorkerCredentialAuthentication]
    permission_classes = [IsWorker]
    parser_classes = [JSONParser]

    @extend_schema(summary="A pool agent reports itself (worker credential)", request=dict, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):
            raise ServiceError("invalid_worker_report", "Send a JSON object describing the worker.")
        for name in REQUIRED:
            value = data.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise ServiceError("invalid_worker_report", f"'{name}' is required: 1 to 200 characters.")
        for name, kinds in REPORT_FIELDS.items():
            value = data.get(name)
            if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
                raise ServiceError("invalid_worker_report", f"'{name}' has the wrong type ({type(value).__name__}).")
        report = {name: data.get(name) for name in REPORT_FIELDS}
        worker = services.worker_heartbeat_record(report=report)
        return Response({"worker": worker.name, "state": worker.state})


class TeamUsageApi(TeamScopedViewSet):
    """GET /api/v1/teams/<team>/compute/usage/: the team's CPU-hours and GPU-hours this month
    against its GPU-hours quota (every member reads it)."""

    scope_map = {"GET": "compute:read"}

    @extend_schema(summary="The team's compute usage this month against its quota", responses={200: dict})
    def retrieve(self, request: Request, team_slug: str) -> Response:
        usage = selectors.team_usage(team=self.team)
        return Response(
            {
                "since": usage.since,
                "cpu_hours": round(usage.cpu_hours, 4),
                "gpu_hours": round(usage.gpu_hours, 4),
                "gpu_hours_quota": str(usage.gpu_hours_quota),
                "gpu_quota_used": round(usage.gpu_quota_used, 4),
                "by_pool_hours": {pool: round(hours, 4) for pool, hours in sorted(usage.by_pool.items())},
            }
        )
