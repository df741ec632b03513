"""REST API for the registry: /api/v1/teams/<team>/models/… (views parse input and call services)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.registry import selectors, services
from cellar_server.registry import serializers as s
from cellar_server.registry.errors import RegistryError
from cellar_server.registry.models import ModelVersion, RegisteredModel
from cellar_server.registry.register import version_register
from cellar_server.registry.step_auth import StepTokenAuthentication, resolve_caller
from cellar_server.teams.actors import actor_from_request
from cellar_server.teams.authentication import BearerTokenAuthentication
from cellar_server.tracking.services.artifacts import artifact_store

READ, WRITE, PROMOTE = "models:read", "models:write", "models:promote"
REF = OpenApiParameter("ref", OpenApiTypes.STR, description="name@alias, name/<version> or name (its latest version)")


def _not_found_as_404(exc: RegistryError) -> Exception:
    return exceptions.NotFound() if exc.code == "not_found" else exc


class ModelApi(TeamScopedViewSet):
    """Registered models: list and detail."""

    model = RegisteredModel
    scope_map = {"GET": READ}
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def safely_get_queryset(self, queryset):
        return selectors.model_list(team=self.team, search=self.request.query_params.get("search", ""))

    def _alias_context(self, models: list[RegisteredModel]) -> dict[str, Any]:
        return {"aliases": selectors.alias_maps(team=self.team, models=models)}

    @extend_schema(responses=s.RegisteredModelSerializer(many=True))
    def list(self, request: Request, team_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            s.RegisteredModelSerializer(page, many=True, context=self._alias_context(page)).data
        )

    @extend_schema(responses=s.RegisteredModelSerializer)
    def retrieve(self, request: Request, team_slug: str, name: str) -> Response:
        model = self.get_object()
        return Response(s.RegisteredModelSerializer(model, context=self._alias_context([model])).data)


class VersionApi(TeamScopedViewSet):
    """A model's versions: list and detail (files, signature, profile)."""

    model = ModelVersion
    scope_map = {"GET": READ}

    def url_model(self) -> RegisteredModel:
        try:
            return selectors.model_for_name(team=self.team, name=self.kwargs["name"])
        except RegistryError as exc:
            raise _not_found_as_404(exc) from None

    def safely_get_queryset(self, queryset):
        return queryset.filter(model=self.url_model()).select_related("model").order_by("-version")

    def _context(self) -> dict[str, Any]:
        return {"aliases": selectors.aliases_by_version(team=self.team, models=[self.url_model()])}

    @extend_schema(responses=s.ModelVersionSerializer(many=True))
    def list(self, request: Request, team_slug: str, name: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ModelVersionSerializer(page, many=True, context=self._context()).data)

    @extend_schema(responses=s.ModelVersionDetailSerializer)
    def retrieve(self, request: Request, team_slug: str, name: str, version: int) -> Response:
        found = self.get_queryset().filter(version=version).first()
        if found is None:
            raise exceptions.NotFound()
        return Response(s.ModelVersionDetailSerializer(found, context=self._context()).data)


class AliasApi(TeamScopedViewSet):
    """A model's aliases: list with history; set and delete (models:promote), guarded."""

    model = RegisteredModel
    scope_map = {"GET": READ, "PUT": PROMOTE, "DELETE": PROMOTE}
    serializer_class = s.AliasSetSerializer

    def url_model(self) -> RegisteredModel:
        try:
            return selectors.model_for_name(team=self.team, name=self.kwargs["name"])
        except RegistryError as exc:
            raise _not_found_as_404(exc) from None

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def list(self, request: Request, team_slug: str, name: str) -> Response:
        model = self.url_model()
        moves = selectors.alias_moves(team=self.team, model=model, limit=50)
        return Response(
            {
                "aliases": selectors.alias_map(team=self.team, model=model),
                "moves": s.AliasMoveSerializer(moves, many=True).data,
            }
        )

    @extend_schema(request=s.AliasSetSerializer, responses=OpenApiTypes.OBJECT)
    def update(self, request: Request, team_slug: str, name: str, alias: str) -> Response:
        data = s.AliasSetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = self.url_model()
        with transaction.atomic():
            services.model_alias_set(
                team=self.team,
                actor=actor_from_request(request),
                model=model,
                alias=alias,
                version=data.validated_data["version"],
                reason=data.validated_data.get("reason"),
            )
        return Response({"alias": alias, "version": data.validated_data["version"]})

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, team_slug: str, name: str, alias: str) -> Response:
        services.model_alias_delete(
            team=self.team, actor=actor_from_request(request), model=self.url_model(), alias=alias
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class StepAwareApi(APIView):
    """Endpoints a pipeline step calls with its task token (as well as people with API tokens)."""

    authentication_classes = [StepTokenAuthentication, BearerTokenAuthentication, SessionAuthentication]

    def get_permissions(self):
        return []  # resolve_caller authenticates: a step is not a Django user


class ResolveApi(StepAwareApi):
    """GET ?ref=name@alias | name/3 | name -> the version's manifest (what load_model downloads)."""

    @extend_schema(parameters=[REF], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, team_slug: str) -> Response:
        if request.auth is None and not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        caller = resolve_caller(request, team_slug)
        caller.require(READ)
        ref = request.query_params.get("ref", "")
        if not ref:
            raise RegistryError("invalid", "Pass ref=<name>@<alias>, <name>/<version> or <name>.")
        version = selectors.model_version_for_ref(team=caller.team, ref=ref)
        return Response({**selectors.manifest_of(version), "metrics": version.metrics, "run_id": version.run_uuid})


class RegisterApi(StepAwareApi):
    """POST: register a version from files in the store, optionally moving an alias past a gate."""

    @extend_schema(request=s.RegisterSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, team_slug: str) -> Response:
        if request.auth is None and not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        caller = resolve_caller(request, team_slug)
        caller.require(WRITE)
        data = s.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if fields.get("alias"):
            caller.require(PROMOTE)
        run_id = fields.get("run_id") or None
        if caller.tracking_run is not None and run_id not in (None, caller.tracking_run):
            raise RegistryError("invalid", "A pipeline step registers from its own run only.")
        if caller.tracking_run is not None and not fields["source"].startswith(f"runs:/{caller.tracking_run}"):
            raise RegistryError(
                "invalid", "A pipeline step registers files it logged to its own run (runs:/<its run>/…)."
            )
        with transaction.atomic():
            version, outcome = version_register(
                team=caller.team,
                actor=caller.actor,
                name=fields["name"],
                source=fields["source"],
                run_uuid=run_id or caller.tracking_run,
                task_id=caller.task_id,
                metrics=fields.get("metrics"),
                profile=fields.get("profile"),
                description=fields.get("description", ""),
                tags=fields.get("tags"),
                alias=fields.get("alias") or None,
                gate=fields.get("gate"),
                reason=fields.get("reason"),
            )
        body = s.ModelVersionSerializer(
            version, context={"aliases": selectors.aliases_by_version(team=caller.team, models=[version.model])}
        ).data
        return Response({"version": body, **outcome}, status=status.HTTP_201_CREATED)


class VersionFileApi(StepAwareApi):
    """GET one file of a version (bytes from the content-addressed store, hash checked)."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, team_slug: str, name: str, version: int, relpath: str) -> FileResponse:
        if request.auth is None and not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        caller = resolve_caller(request, team_slug)
        caller.require(READ)
        try:
            found = selectors.model_version_get(team=caller.team, name=name, version=version)
        except RegistryError as exc:
            raise _not_found_as_404(exc) from None
        sha = found.files.get(relpath)
        if sha is None:
            raise exceptions.NotFound()
        stream = artifact_store().open_blob(caller.team.slug, sha)
        response = FileResponse(stream, content_type="application/octet-stream")
        response["X-Content-SHA256"] = sha
        return response
