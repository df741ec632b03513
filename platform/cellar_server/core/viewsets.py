"""The one base viewset for team data. Subclasses cannot forget the team.

- The team comes from the URL (`team_slug`), never from a "current team"
  preference; a team the user cannot see answers 404, like a missing one.
- Permissions are a per-method scope map (`scope_map = {"GET": "members:read"}`),
  checked against the effective scopes: the role's, narrowed by the token's.
- Querysets come from the model's fail-closed team-scoped manager, inside the
  team scope; subclasses refine them in `safely_get_queryset`.
- Overriding get_queryset, get_object, get_permissions or initial is refused
  at class creation.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from rest_framework import exceptions, viewsets
from rest_framework.request import Request

from cellar_server.core import scoping

_PROTECTED = ("get_queryset", "get_object", "get_permissions", "initial", "finalize_response")


class MissingScope(exceptions.PermissionDenied):
    def __init__(self, message: str, code: str = "missing_scope"):
        super().__init__(detail=message)
        self.cellar_code = code


class TeamScopedViewSet(viewsets.GenericViewSet):
    model: ClassVar[type[models.Model] | None] = None
    scope_map: ClassVar[dict[str, str]] = {}
    lookup_field = "pk"
    lookup_value_regex = "[0-9]+"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _PROTECTED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(); team scoping lives in TeamScopedViewSet. "
                    "Use safely_get_queryset() to refine the queryset."
                )

    # --- request life cycle ---------------------------------------------------

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, IsAuthenticated, throttles
        from cellar_server.teams.models import ApiToken
        from cellar_server.teams.selectors import team_access, team_access_for_token

        token = getattr(request, "auth", None)
        slug = kwargs.get("team_slug", "")
        if isinstance(token, ApiToken):
            access = team_access_for_token(token=token, slug=slug)
        else:
            access = team_access(user=request.user, slug=slug)
        if access is None:
            raise exceptions.NotFound()
        scopes = access.scopes
        if token is not None and hasattr(token, "scopes"):
            if token.team_id != access.team.id:
                raise MissingScope(
                    f"This token belongs to another team; mint one in '{access.team.slug}'.", "token_wrong_team"
                )
            scopes = scopes & frozenset(token.scopes)
        self.team = access.team
        self.role = access.role
        self.scopes = scopes
        self._scope_token = scoping._current_team_id.set(access.team.id)
        required = self.required_scope(request)
        if required and required not in scopes:
            via = "token" if token is not None and required in access.scopes else f"role '{access.role or 'none'}'"
            raise MissingScope(f"This action needs the '{required}' scope, which your {via} does not grant.")

    def finalize_response(self, request: Request, response, *args: Any, **kwargs: Any):
        token = getattr(self, "_scope_token", None)
        if token is not None:
            scoping._current_team_id.reset(token)
            self._scope_token = None
        return super().finalize_response(request, response, *args, **kwargs)

    def required_scope(self, request: Request) -> str | None:
        action_scopes = getattr(self, "action_scope_map", {})
        if self.action in action_scopes:
            return action_scopes[self.action]
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        if method not in self.scope_map:
            raise exceptions.MethodNotAllowed(request.method)
        return self.scope_map[method]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    # --- data access ---------------------------------------------------------

    def get_queryset(self) -> models.QuerySet:
        if self.model is None:
            raise exceptions.NotFound()
        return self.safely_get_queryset(self.model.objects.all())

    def safely_get_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        return queryset

    def get_object(self) -> models.Model:
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        obj = self.get_queryset().filter(**{self.lookup_field: lookup}).first()
        if obj is None:
            raise exceptions.NotFound()
        return obj
