"""Shared plumbing for team pages: resolve the team from the URL, check a scope."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.teams.actors import Actor
from cellar_server.teams.selectors import TeamAccess, team_access


def team_page(scope: str) -> Callable:
    """Decorate a page view `view(request, access, ...)` that needs `scope` in the URL's team."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, team_slug: str, *args, **kwargs) -> HttpResponse:
            access = team_access(user=request.user, slug=team_slug)
            if access is None:
                raise Http404("No such team.")
            request.cellar_team_name = access.team.name  # the header shows the name, not the slug
            if scope not in access.scopes:
                raise PermissionDenied(f"This page needs the '{scope}' scope.")
            with team_scope(access.team.id):
                return view(request, access, *args, **kwargs)

        return wrapper

    return decorator


def page_actor(request: HttpRequest) -> Actor:
    return Actor(user=request.user)


def run_service(request: HttpRequest, action: Callable[[], object], *, success: str | None = None) -> bool:
    """Call a service; a rule it enforces becomes a message on the page instead of an error page."""
    try:
        action()
    except ServiceError as exc:
        messages.error(request, exc.message)
        return False
    if success:
        messages.success(request, success)
    return True


def back_to(access: TeamAccess, url_name: str) -> HttpResponse:
    return redirect(url_name, team_slug=access.team.slug)
