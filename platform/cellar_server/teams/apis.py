"""REST API for teams: /api/v1/teams/… (views only parse input and call services)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from cellar_server.core.viewsets import MissingScope, TeamScopedViewSet
from cellar_server.teams import selectors, services
from cellar_server.teams import serializers as s
from cellar_server.teams.actors import actor_from_request
from cellar_server.teams.models import ApiToken, AuditEvent, Invitation, Membership


def _team_payload(team, role):
    return {"slug": team.slug, "name": team.name, "created_at": team.created_at, "role": role}


class TeamListApi(APIView):
    """Teams the caller belongs to; create a team (the caller becomes its owner)."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=s.TeamSerializer(many=True))
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        rows = selectors.teams_for_user(user=request.user)
        if token is not None:
            rows = [(t, r) for t, r in rows if t.id == token.team_id]
        paginator = self.pagination_class()
        page = paginator.paginate_queryset([_team_payload(t, r) for t, r in rows], request, view=self)
        return paginator.get_paginated_response(s.TeamSerializer(page, many=True).data)

    @extend_schema(request=s.TeamCreateInput, responses={201: s.TeamSerializer})
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            # A token is bound to one team; creating teams is a person's act.
            raise MissingScope(
                "API tokens cannot create teams; sign in to the web console or use `manage.py cellar_bootstrap`.",
                "session_required",
            )
        data = _valid(s.TeamCreateInput, request)
        team = services.team_create(actor=actor_from_request(request), slug=data["slug"], name=data.get("name", ""))
        return Response(s.TeamSerializer(_team_payload(team, "owner")).data, status=status.HTTP_201_CREATED)


class MeApi(APIView):
    """Who the caller is, their teams and, for token calls, the token."""

    @extend_schema(responses=s.MeSerializer)
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        rows = selectors.teams_for_user(user=request.user)
        if token is not None:
            rows = [(t, r) for t, r in rows if t.id == token.team_id]
        user = request.user
        payload = {
            "username": user.username,
            "email": user.email,
            "is_staff": user.is_staff,
            "teams": [_team_payload(t, r) for t, r in rows],
            "token": token,
        }
        return Response(s.MeSerializer(payload).data)


class InvitationAcceptApi(APIView):
    """Join a team with an invitation link's secret."""

    @extend_schema(request=s.InvitationAcceptInput, responses={201: s.MemberSerializer})
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            raise MissingScope("Accept invitations while signed in to the web console.", "session_required")
        data = _valid(s.InvitationAcceptInput, request)
        membership = services.invitation_accept(user=request.user, raw=data["token"])
        return Response(s.MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


def _valid(serializer_class, request: Request, *, data=None) -> dict:
    serializer = serializer_class(data=request.data if data is None else data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class TeamDetailApi(TeamScopedViewSet):
    serializer_class = s.TeamSerializer
    scope_map = {"GET": "team:read", "PATCH": "team:write", "DELETE": "team:delete"}

    @extend_schema(responses=s.TeamSerializer)
    def retrieve(self, request: Request, team_slug: str) -> Response:
        return Response(s.TeamSerializer(_team_payload(self.team, self.role)).data)

    @extend_schema(request=s.TeamUpdateInput, responses=s.TeamSerializer)
    def partial_update(self, request: Request, team_slug: str) -> Response:
        data = _valid(s.TeamUpdateInput, request)
        team = services.team_update(actor=actor_from_request(request), team=self.team, name=data["name"])
        return Response(s.TeamSerializer(_team_payload(team, self.role)).data)

    def destroy(self, request: Request, team_slug: str) -> Response:
        services.team_delete(actor=actor_from_request(request), team=self.team)
        return Response(status=status.HTTP_204_NO_CONTENT)


class QuotaApi(TeamScopedViewSet):
    """The team's quotas: every member reads them; platform admins edit them."""

    serializer_class = s.QuotaSerializer
    scope_map = {"GET": "quotas:read", "PATCH": "quotas:write"}

    @extend_schema(responses=s.QuotaSerializer)
    def retrieve(self, request: Request, team_slug: str) -> Response:
        return Response(s.QuotaSerializer(self.team).data)

    @extend_schema(request=s.QuotaSerializer, responses=s.QuotaSerializer)
    def partial_update(self, request: Request, team_slug: str) -> Response:
        data = _valid(s.QuotaSerializer, request)
        team = services.team_quota_update(actor=actor_from_request(request), team=self.team, **data)
        return Response(s.QuotaSerializer(team).data)


class MemberApi(mixins.ListModelMixin, TeamScopedViewSet):
    model = Membership
    serializer_class = s.MemberSerializer
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = "[^/]+"
    # Leaving a team needs no admin scope; removing someone else does (checked below).
    scope_map = {"GET": "members:read", "PATCH": "members:write", "DELETE": "team:read"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("user").order_by("user__username")

    @extend_schema(request=s.MemberUpdateInput, responses=s.MemberSerializer)
    def partial_update(self, request: Request, team_slug: str, username: str) -> Response:
        membership = self.get_object()
        data = _valid(s.MemberUpdateInput, request)
        membership = services.membership_role_change(
            actor=actor_from_request(request), team=self.team, user_id=membership.user_id, role=data["role"]
        )
        return Response(s.MemberSerializer(membership).data)

    def destroy(self, request: Request, team_slug: str, username: str) -> Response:
        membership = self.get_object()
        if membership.user_id != request.user.pk and not self.has_scope("members:write"):
            raise MissingScope("Removing another member needs the 'members:write' scope.")
        services.membership_remove(actor=actor_from_request(request), team=self.team, user_id=membership.user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationApi(mixins.ListModelMixin, TeamScopedViewSet):
    model = Invitation
    serializer_class = s.InvitationSerializer
    scope_map = {"GET": "members:read", "POST": "members:write", "DELETE": "members:write"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("invited_by").order_by("-created_at")

    @extend_schema(request=s.InvitationCreateInput, responses={201: s.InvitationCreatedSerializer})
    def create(self, request: Request, team_slug: str) -> Response:
        data = _valid(s.InvitationCreateInput, request)
        invitation, raw = services.invitation_create(
            actor=actor_from_request(request), team=self.team, role=data["role"], email=data.get("email", "")
        )
        invitation.url = request.build_absolute_uri(reverse("teams:invitation", kwargs={"secret": raw}))
        return Response(s.InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, team_slug: str, pk: str) -> Response:
        services.invitation_revoke(actor=actor_from_request(request), invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenApi(mixins.ListModelMixin, TeamScopedViewSet):
    """API tokens: members manage their own; admins see and revoke everyone's."""

    model = ApiToken
    serializer_class = s.TokenSerializer
    scope_map = {"GET": "tokens:write", "POST": "tokens:write", "DELETE": "tokens:write"}

    def safely_get_queryset(self, queryset):
        queryset = queryset.select_related("user").order_by("-created_at")
        if not self.has_scope("tokens:admin"):
            queryset = queryset.filter(user_id=self.request.user.pk)
        return queryset

    @extend_schema(request=s.TokenCreateInput, responses={201: s.TokenCreatedSerializer})
    def create(self, request: Request, team_slug: str) -> Response:
        data = _valid(s.TokenCreateInput, request)
        token, raw = services.api_token_create(
            actor=actor_from_request(request),
            team=self.team,
            name=data["name"],
            scopes=data.get("scopes"),
            expires_in_days=data.get("expires_in_days"),
        )
        token.token = raw
        return Response(s.TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, team_slug: str, pk: str) -> Response:
        token = self.get_object()
        services.api_token_revoke(
            actor=actor_from_request(request), token=token, can_revoke_others=self.has_scope("tokens:admin")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventApi(mixins.ListModelMixin, TeamScopedViewSet):
    """The audit log, newest first; filter by actor, verb (or 'member.' prefix) and dates."""

    model = AuditEvent
    serializer_class = s.AuditEventSerializer
    scope_map = {"GET": "audit:read"}

    def safely_get_queryset(self, queryset):
        filters = _valid(s.AuditFilterInput, self.request, data=self.request.query_params)
        return selectors.audit_event_list(team=self.team, filters=selectors.AuditFilters(**filters)).select_related(
            "token"
        )

    @extend_schema(parameters=[s.AuditFilterInput])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)
