"""REST API for workspaces.

- `POST /api/v1/workspaces/kernel-tokens/`: a user's notebook server trades the token the hub
  gave it (`Authorization: token $JUPYTERHUB_API_TOKEN`) for Cellar kernel tokens. Cellar asks
  the hub whose token it is; nothing else is accepted here.
- `POST /api/v1/teams/<team>/workspaces/promote-preview/` and `…/promote/`: the notebook's
  "Promote to production" dialog (promote.py), called by the server extension with the user's
  kernel token for that team.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cellar_server.core.errors import error_body
from cellar_server.core.viewsets import TeamScopedViewSet
from cellar_server.pipelines import payloads
from cellar_server.pipelines.errors import PipelineError
from cellar_server.pipelines.serializers import NotebookField
from cellar_server.teams.actors import actor_from_request
from cellar_server.workspaces import promote, selectors, services
from cellar_server.workspaces.hub import HubClient


class HubServerTokenAuthentication(BaseAuthentication):
    """`Authorization: token <hub token>`: the hub says which user holds it."""

    keyword = "token"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != self.keyword.encode():
            return None
        model = HubClient().identify(header[1].decode("latin-1"))
        if not model or model.get("kind") != "user":
            raise exceptions.AuthenticationFailed("The notebook hub does not recognise this token as a user's.")
        user = selectors.user_for_hub_name(model.get("name", ""))
        if user is None:
            raise exceptions.AuthenticationFailed("No active Cellar user has this hub user's name.")
        return user, None

    def authenticate_header(self, request) -> str:
        return self.keyword


class KernelTokenApi(APIView):
    authentication_classes = [HubServerTokenAuthentication]

    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "KernelTokens",
                {
                    "url": serializers.CharField(),
                    "tokens": serializers.DictField(child=serializers.CharField()),
                    "expires_at": serializers.DateTimeField(),
                    "renew_after": serializers.DateTimeField(),
                },
            )
        },
        description="Kernel tokens (tracking and pipelines scopes, one per team) for the hub user holding the token.",
    )
    def post(self, request: Request) -> Response:
        issued = services.kernel_tokens_issue(user=request.user)
        body = {
            "url": settings.CELLAR_API_URL,
            "username": request.user.get_username(),
            "tokens": issued.tokens,
            "expires_at": issued.expires_at,
            "renew_after": issued.renew_after,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class PromoteInput(serializers.Serializer):
    notebook = NotebookField(help_text="The notebook as the browser has it, unsaved edits included.")
    cells = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False, allow_null=True)
    pipeline = serializers.CharField(max_length=100, allow_blank=True, default="")
    notebook_name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    production = serializers.BooleanField(required=False, default=False)
    run_now = serializers.BooleanField(required=False, default=False)
    parameters = serializers.DictField(required=False, default=dict)


class PromoteApiBase(TeamScopedViewSet):
    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, PipelineError) and exc.detail is not None:
            return Response(error_body(exc.code, exc.message, exc.detail), status=exc.status_code)
        return super().handle_exception(exc)

    def input(self) -> dict:
        serializer = PromoteInput(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class PromotePreviewApi(PromoteApiBase):
    scope_map = {"POST": "pipelines:read"}

    @extend_schema(request=PromoteInput, responses={200: dict})
    def create(self, request: Request, team_slug: str) -> Response:
        data = self.input()
        body = promote.promote_preview(
            team=self.team,
            notebook=data["notebook"],
            cells=data.get("cells"),
            pipeline_name=data["pipeline"],
            notebook_name=data["notebook_name"],
            scopes=self.scopes,
        )
        return Response(body)


class PromoteApi(PromoteApiBase):
    scope_map = {"POST": "pipelines:write"}

    @extend_schema(request=PromoteInput, responses={201: dict, 200: dict})
    def create(self, request: Request, team_slug: str) -> Response:
        data = self.input()
        outcome = promote.promote(
            team=self.team,
            actor=actor_from_request(request),
            scopes=self.scopes,
            notebook=data["notebook"],
            cells=data.get("cells"),
            pipeline_name=data["pipeline"],
            notebook_name=data["notebook_name"],
            production=data["production"],
            run_now=data["run_now"],
            parameters=data["parameters"],
        )
        version = outcome.version
        pipeline = version.pipeline
        pipeline.refresh_from_db(fields=["production"])
        base = settings.CELLAR_PUBLIC_URL.rstrip("/")
        version_url = f"{base}/t/{self.team.slug}/pipelines/{pipeline.name}/versions/{version.number}/"
        run = None
        if outcome.run is not None:
            run = {
                "number": outcome.run.number,
                "state": outcome.run.state,
                "url": f"{base}/t/{self.team.slug}/pipelines/{pipeline.name}/runs/{outcome.run.number}/",
            }
        body = {
            "version": {**payloads.version_summary(version, pipeline), "url": version_url},
            "created": outcome.created,
            "is_production": pipeline.production_id == version.pk,
            "moved": outcome.moved,
            "run": run,
            "warnings": outcome.warnings,
        }
        return Response(body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)
