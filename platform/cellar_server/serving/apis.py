"""/api/v1/teams/<team>/deployments/… (people and tokens) and /api/v1/serving/… (serve processes).

GET    deployments/                       deployments:read   list with health
POST   deployments/                       deployments:write  {name, routes: [{version_id, weight}], ...}
GET    deployments/<name>/                deployments:read
PATCH  deployments/<name>/                deployments:write  {routes?, sample_rate?, drift_threshold?, description?}
DELETE deployments/<name>/                deployments:write
GET    deployments/<name>/keys/           deployments:read
POST   deployments/<name>/keys/           deployments:write  {name} → the key, shown once
DELETE deployments/<name>/keys/<id>/      deployments:write  revoke
GET    deployments/<name>/traffic/        deployments:read   per-minute rate, errors, p50/p99
GET    deployments/<name>/drift/          deployments:read   PSI per feature per routed version

GET    /api/v1/serving/routes/            serve credential; If-None-Match → 304
POST   /api/v1/serving/health/            serve credential; {"reporter", "versions": [...]}
POST   /api/v1/serving/predictions/       serve credential; outbox {"records": [...]}
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cellar_server.core.errors import error_body
from cellar_server.core.exceptions import ServiceError
from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.serving import selectors, services
from cellar_server.serving import serializers as s
from cellar_server.serving.credentials import IsServe, ServeCredentialAuthentication
from cellar_server.serving.models import Deployment, DeploymentKey
from cellar_server.serving.payloads import deployment_payload, key_payload
from cellar_server.teams.actors import actor_from_request

READ = "deployments:read"
WRITE = "deployments:write"


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ServiceError("invalid_body", "Send a JSON object.")
    return request.data


class _DeploymentBase(TeamScopedViewSet):
    model = Deployment
    lookup_field = "name"
    lookup_url_kwarg = "deployment_name"
    lookup_value_regex = "[a-z0-9-]+"

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ServiceError):
            return Response(error_body(exc.code, exc.message), status=exc.status_code)
        return super().handle_exception(exc)


class DeploymentApi(_DeploymentBase):
    scope_map = {"GET": READ, "POST": WRITE, "PATCH": WRITE, "DELETE": WRITE}
    serializer_class = s.DeploymentSerializer

    @extend_schema(operation_id="deployments_list", responses=s.DeploymentSerializer(many=True))
    def list(self, request: Request, team_slug: str) -> Response:
        summaries = selectors.deployment_list(team=self.team)
        page = self.paginate_queryset(summaries)
        return self.get_paginated_response([deployment_payload(s) for s in page])

    @extend_schema(
        operation_id="deployments_create", request=s.DeploymentCreateInput, responses={201: s.DeploymentSerializer}
    )
    def create(self, request: Request, team_slug: str) -> Response:
        data = _body(request)
        deployment = services.deployment_create(
            team=self.team,
            actor=actor_from_request(request),
            name=data.get("name", ""),
            routes=data.get("routes"),
            description=data.get("description", ""),
            sample_rate=data.get("sample_rate"),
        )
        summary = selectors.deployment_summary(deployment=deployment)
        return Response(deployment_payload(summary), status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="deployments_retrieve", responses=s.DeploymentSerializer)
    def retrieve(self, request: Request, team_slug: str, deployment_name: str) -> Response:
        return Response(deployment_payload(selectors.deployment_summary(deployment=self.get_object())))

    @extend_schema(operation_id="deployments_update", request=s.DeploymentUpdateInput, responses=s.DeploymentSerializer)
    def partial_update(self, request: Request, team_slug: str, deployment_name: str) -> Response:
        data = _body(request)
        unknown = sorted(set(data) - {"routes", "sample_rate", "drift_threshold", "description"})
        if unknown:
            raise ServiceError("unknown_field", f"Cannot change: {', '.join(unknown)}.")
        deployment = services.deployment_update(
            team=self.team,
            actor=actor_from_request(request),
            deployment=self.get_object(),
            routes=data.get("routes"),
            description=data.get("description"),
            sample_rate=data.get("sample_rate"),
            drift_threshold=data.get("drift_threshold"),
        )
        return Response(deployment_payload(selectors.deployment_summary(deployment=deployment)))

    @extend_schema(operation_id="deployments_destroy", responses={204: None})
    def destroy(self, request: Request, team_slug: str, deployment_name: str) -> Response:
        services.deployment_delete(team=self.team, actor=actor_from_request(request), deployment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="deployments_traffic", responses={200: dict})
    def traffic(self, request: Request, team_slug: str, deployment_name: str) -> Response:
        try:
            minutes = min(max(int(request.query_params.get("minutes", 60)), 1), 24 * 60)
        except ValueError:
            raise ServiceError("invalid_minutes", "'minutes' must be a whole number of minutes.") from None
        return Response(selectors.deployment_traffic(deployment=self.get_object(), minutes=minutes))

    @extend_schema(operation_id="deployments_drift", responses={200: dict})
    def drift(self, request: Request, team_slug: str, deployment_name: str) -> Response:
        deployment = self.get_object()
        return Response(
            {"threshold": deployment.drift_threshold, "versions": selectors.deployment_drift(deployment=deployment)}
        )


class DeploymentKeyApi(_DeploymentBase):
    scope_map = {"GET": READ, "POST": WRITE, "DELETE": WRITE}
    serializer_class = s.KeySerializer

    def _deployment(self) -> Deployment:
        deployment = selectors.deployment_get(team=self.team, name=self.kwargs["deployment_name"])
        if deployment is None:
            raise exceptions.NotFound()
        return deployment

    @extend_schema(operation_id="deployment_keys_list", responses=s.KeyListSerializer)
    def list(self, request: Request, team_slug: str, deployment_name: str) -> Response:
        keys = selectors.deployment_keys(deployment=self._deployment())
        return Response({"results": [key_payload(k) for k in keys]})

    @extend_schema(operation_id="deployment_keys_create", request=s.KeyCreateInput, responses={201: s.KeySerializer})
    def create(self, request: Request, team_slug: str, deployment_name: str) -> Response:
        key, raw = services.deployment_key_create(
            team=self.team,
            actor=actor_from_request(request),
            deployment=self._deployment(),
            name=_body(request).get("name", ""),
        )
        return Response(key_payload(key, raw), status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="deployment_keys_revoke", responses=s.KeySerializer)
    def destroy(self, request: Request, team_slug: str, deployment_name: str, key_id: int) -> Response:
        key = DeploymentKey.objects.filter(deployment=self._deployment(), pk=key_id).first()
        if key is None:
            raise exceptions.NotFound()
        key = services.deployment_key_revoke(team=self.team, actor=actor_from_request(request), key=key)
        return Response(key_payload(key))


class _ServeApi(APIView):
    authentication_classes = [ServeCredentialAuthentication]
    permission_classes = [IsServe]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ServiceError):
            return Response(error_body(exc.code, exc.message), status=exc.status_code)
        return super().handle_exception(exc)


@extend_schema(tags=["serving"], responses={200: dict, 304: None})
class RoutesApi(_ServeApi):
    def get(self, request: Request) -> Response:
        body, etag = selectors.route_manifests()
        if request.headers.get("If-None-Match") == etag:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(body, headers={"ETag": etag})


@extend_schema(tags=["serving"], request=dict, responses={200: dict})
class HealthApi(_ServeApi):
    def post(self, request: Request) -> Response:
        data = _body(request)
        written = services.health_report(reporter=str(data.get("reporter", "serve")), versions=data.get("versions"))
        return Response({"written": written})


@extend_schema(tags=["serving"], request=dict, responses={200: dict})
class PredictionsApi(_ServeApi):
    def post(self, request: Request) -> Response:
        counts = services.predictions_ingest(records=_body(request).get("records"))
        return Response(counts)
