"""REST API for pipelines: /api/v1/teams/<team>/pipelines/… (views parse input and call services)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from cellar_server.core.errors import error_body
from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.pipelines import diff, payloads, selectors, services
from cellar_server.pipelines import serializers as s
from cellar_server.pipelines.errors import PipelineError
from cellar_server.pipelines.models import Pipeline, PipelineVersion, ProductionMove
from cellar_server.teams.actors import actor_from_request

READ, WRITE, PROMOTE = "pipelines:read", "pipelines:write", "pipelines:promote"
PIPELINE = OpenApiParameter("pipeline_name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The pipeline.")
REF = OpenApiParameter(
    "ref", OpenApiTypes.STR, OpenApiParameter.PATH, description="A version: its number (3, v3) or id (prefix of 8+)."
)
OTHER = OpenApiParameter("other", OpenApiTypes.STR, OpenApiParameter.PATH, description="The version to compare to.")
ERROR = OpenApiResponse(description='{"error": {"code", "message", "detail"?}}')
COMPILE_ERROR = OpenApiResponse(
    description='compile_error / missing_package / not_a_notebook: {"error": {…, "detail": {"problems": […]}}}'
)


class PipelineApiBase(TeamScopedViewSet):
    """Renders a PipelineError's `detail` (the compile problems) and resolves the URL's pipeline."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, PipelineError) and exc.detail is not None:
            return Response(error_body(exc.code, exc.message, exc.detail), status=exc.status_code)
        return super().handle_exception(exc)

    def url_pipeline(self) -> Pipeline:
        pipeline = selectors.pipeline_for_name(name=self.kwargs["pipeline_name"])
        if pipeline is None:
            raise exceptions.NotFound()
        return pipeline

    def url_version(self, pipeline: Pipeline, ref: str, *, full: bool = True) -> PipelineVersion:
        version = selectors.version_for_ref(pipeline=pipeline, ref=ref, full=full)
        if version is None:
            raise exceptions.NotFound()
        return version


def _valid(serializer_class, data) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _notebook_input(request: Request, serializer_class) -> dict[str, Any]:
    """The JSON body, or a multipart form with the .ipynb attached as `notebook`."""
    if not (request.content_type or "").startswith("multipart/"):
        data = dict(_valid(serializer_class, request.data))
        data["environment"] = s.environment_from(data.get("environment"))
        return data
    form = _valid(s.VersionUploadInput, request.data)
    upload = form["notebook"]
    data: dict[str, Any] = {
        "notebook": s.notebook_from_text(upload.read()),
        "cells": s.parse_cells(form.get("cells")),
        "environment": s.environment_from(
            s.notebook_from_text(form["environment"]) if form.get("environment") else None
        ),
        "kernel_values": None,
        "notebook_name": form.get("notebook_name") or upload.name or "",
        "production": form.get("production", False),
        "description": form.get("description", ""),
    }
    return data


class PipelineApi(PipelineApiBase):
    model = Pipeline
    scope_map = {"GET": READ}
    lookup_field = "name"
    lookup_url_kwarg = "pipeline_name"
    serializer_class = s.PipelineSerializer

    def safely_get_queryset(self, queryset):
        return selectors.pipeline_list()

    @extend_schema(responses=s.PipelineSerializer(many=True))
    def list(self, request: Request, team_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            s.PipelineSerializer([payloads.pipeline_payload(p) for p in page], many=True).data
        )

    @extend_schema(parameters=[PIPELINE], responses={200: s.PipelineSerializer, 404: ERROR})
    def retrieve(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        return Response(s.PipelineSerializer(payloads.pipeline_payload(self.get_object())).data)


class PipelineVersionApi(PipelineApiBase):
    model = PipelineVersion
    scope_map = {"GET": READ, "POST": WRITE}
    parser_classes = [JSONParser, MultiPartParser]
    serializer_class = s.VersionDetailSerializer

    @extend_schema(parameters=[PIPELINE], responses={200: s.VersionSummarySerializer(many=True), 404: ERROR})
    def list(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        page = self.paginate_queryset(selectors.version_list(pipeline=pipeline))
        rows = [payloads.version_summary(v, pipeline) for v in page]
        return self.get_paginated_response(s.VersionSummarySerializer(rows, many=True).data)

    @extend_schema(
        parameters=[PIPELINE],
        request={"application/json": s.VersionCreateInput, "multipart/form-data": s.VersionUploadInput},
        responses={201: s.VersionCreatedSerializer, 200: s.VersionCreatedSerializer, 400: COMPILE_ERROR, 403: ERROR},
        description="Compile a notebook into a version (201), or find the version with the same content (200).",
    )
    def create(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        data = _notebook_input(request, s.VersionCreateInput)
        outcome = services.pipeline_version_create(
            team=self.team,
            pipeline_name=pipeline_name,
            notebook=data["notebook"],
            cells=data.get("cells"),
            environment=data.get("environment"),
            kernel_values=data.get("kernel_values"),
            notebook_name=data.get("notebook_name") or "",
            description=data.get("description") or "",
            actor=actor_from_request(request),
            production=data.get("production", False),
            scopes=self.scopes,
        )
        version = outcome.version
        body = {
            **payloads.version_detail(version, version.pipeline),
            "created": outcome.created,
            "request_warnings": outcome.warnings,
        }
        code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        return Response(s.VersionCreatedSerializer(body).data, status=code)

    @extend_schema(parameters=[PIPELINE, REF], responses={200: s.VersionDetailSerializer, 400: ERROR, 404: ERROR})
    def retrieve(self, request: Request, team_slug: str, pipeline_name: str, ref: str) -> Response:
        pipeline = self.url_pipeline()
        version = self.url_version(pipeline, ref)
        return Response(s.VersionDetailSerializer(payloads.version_detail(version, pipeline)).data)

    @extend_schema(
        parameters=[PIPELINE, REF, OTHER],
        responses={200: s.VersionDiffSerializer, 400: ERROR, 404: ERROR},
        description="What changed from version `ref` to version `other`: per step, parameters, environment.",
    )
    def diff(self, request: Request, team_slug: str, pipeline_name: str, ref: str, other: str) -> Response:
        pipeline = self.url_pipeline()
        old, new = self.url_version(pipeline, ref), self.url_version(pipeline, other)
        body = diff.version_diff(old.spec, new.spec, labels=(f"v{old.number}", f"v{new.number}"))
        body["from"] = payloads.version_summary(old, pipeline)
        body["to"] = payloads.version_summary(new, pipeline)
        return Response(s.VersionDiffSerializer(body).data)


class PipelineProductionApi(PipelineApiBase):
    model = ProductionMove
    scope_map = {"GET": READ, "POST": PROMOTE}
    serializer_class = s.ProductionSerializer

    def _current(self, pipeline: Pipeline) -> dict[str, Any] | None:
        if pipeline.production is None:
            return None
        return payloads.version_summary(pipeline.production, pipeline)

    @extend_schema(parameters=[PIPELINE], responses={200: s.ProductionSerializer, 404: ERROR})
    def retrieve(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        page = self.paginate_queryset(selectors.production_history(pipeline=pipeline))
        response = self.get_paginated_response([payloads.move_payload(m) for m in page])
        body = {"current": self._current(pipeline), **response.data}
        return Response(s.ProductionSerializer(body).data)

    @extend_schema(
        parameters=[PIPELINE],
        request=s.ProductionMoveInput,
        responses={200: s.ProductionMovedSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        description="Point the production alias at a version (a repeated call moves nothing).",
    )
    def promote(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        data = _valid(s.ProductionMoveInput, request.data)
        version = self.url_version(pipeline, data["version"], full=False)
        move = services.pipeline_production_move(
            team=self.team, pipeline=pipeline, version=version, actor=actor_from_request(request)
        )
        return self._moved(pipeline, move)

    @extend_schema(
        parameters=[PIPELINE],
        request=None,
        responses={200: s.ProductionMovedSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Move the production alias back to where it pointed before its last promote.",
    )
    def rollback(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        move = services.pipeline_production_rollback(
            team=self.team, pipeline=pipeline, actor=actor_from_request(request)
        )
        return self._moved(pipeline, move)

    def _moved(self, pipeline: Pipeline, move: ProductionMove | None) -> Response:
        body = {
            "current": self._current(pipeline),
            "moved": move is not None,
            "move": payloads.move_payload(move) if move is not None else None,
        }
        return Response(s.ProductionMovedSerializer(body).data)


class PipelineCompileApi(PipelineApiBase):
    """A dry run: what a notebook would become (steps, DAG, warnings) or why it cannot."""

    scope_map = {"POST": WRITE}
    parser_classes = [JSONParser, MultiPartParser]
    serializer_class = s.CompileResultSerializer

    @extend_schema(
        request={"application/json": s.CompileInput, "multipart/form-data": s.VersionUploadInput},
        responses={200: s.CompileResultSerializer, 400: ERROR},
    )
    def create(self, request: Request, team_slug: str) -> Response:
        data = _notebook_input(request, s.CompileInput)
        try:
            compiled = services.pipeline_compile(
                notebook=data["notebook"],
                cells=data.get("cells"),
                environment=data.get("environment"),
                kernel_values=data.get("kernel_values"),
                notebook_name=data.get("notebook_name") or "",
            )
        except PipelineError as exc:
            if exc.code == "not_a_notebook" or not isinstance(exc.detail, dict):
                raise
            return Response(s.CompileResultSerializer(payloads.compile_result(None, [], exc.detail["problems"])).data)
        body = payloads.compile_result(compiled.spec, compiled.warnings, [])
        return Response(s.CompileResultSerializer(body).data)
