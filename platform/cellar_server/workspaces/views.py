"""The workspace page: my notebook server's state, start (with a profile) and stop, a link into JupyterLab.

Starting returns at once (202 from the hub while it spawns); the page polls the state partial
with htmx every two seconds until the server is running or stopped. Nothing here blocks a
request on a spawn.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from cellar_server.core.exceptions import ServiceError
from cellar_server.teams.pages import team_page
from cellar_server.teams.selectors import TeamAccess
from cellar_server.workspaces import services
from cellar_server.workspaces.hub import HubClient, ServerState

READ = "team:read"


def _context(request: HttpRequest, access: TeamAccess, state: ServerState | None, error: str = "") -> dict:
    name = request.user.get_username()
    hub_url = settings.CELLAR_HUB_PUBLIC_URL.rstrip("/")
    return {
        "access": access,
        "state": state,
        "error": error,
        "profiles": settings.CELLAR_WORKSPACE_PROFILES,
        "lab_url": f"{hub_url}/user/{name}/lab",
        "hub_url": hub_url,
        "polling": state is not None and state.state in ("starting", "stopping"),
    }


def _state_or_error(call) -> tuple[ServerState | None, str]:
    try:
        return call(), ""
    except ServiceError as exc:
        return None, exc.message


@team_page(READ)
def workspace(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    state, error = _state_or_error(lambda: HubClient().server_state(request.user.get_username()))
    return render(request, "workspaces/workspace.html", _context(request, access, state, error))


@team_page(READ)
def workspace_state(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    state, error = _state_or_error(lambda: HubClient().server_state(request.user.get_username()))
    return render(request, "workspaces/_server.html", _context(request, access, state, error))


@require_POST
@team_page(READ)
def workspace_start(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    profile = request.POST.get("profile", "cpu")
    state, error = _state_or_error(lambda: services.workspace_start(user=request.user, profile=profile))
    response = render(request, "workspaces/_server.html", _context(request, access, state, error))
    if state is not None and state.state == "starting":
        response.status_code = 202  # accepted: the page polls the state until it runs
    return response


@require_POST
@team_page(READ)
def workspace_stop(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    state, error = _state_or_error(lambda: services.workspace_stop(user=request.user))
    return render(request, "workspaces/_server.html", _context(request, access, state, error))
