"""The workspace page: my notebook server's state, start (with a profile) and stop, a link into JupyterLab.

Starting returns at once (202 from the hub while it spawns); the page polls the state partial
with htmx every two seconds until the server is running or stopped. Nothing here blocks a
request on a spawn.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
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


@team_page("pipelines:read")
def workspace_open(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """ "Open in notebook" from a failed task: start my server if needed, then `cellar pull` in it.

    The server extension writes the reproducing notebook (pulled/<pipeline>-<run>-<step>.ipynb)
    and opens it in JupyterLab. While the server starts, this page polls and then redirects.
    """
    pipeline, step = request.GET.get("pipeline", ""), request.GET.get("step", "")
    run, index = request.GET.get("run", ""), request.GET.get("index", "")
    if not (pipeline and step and run.isdigit()) or (index and not index.isdigit()):
        return HttpResponseBadRequest("Open in notebook needs pipeline, run (a number), step and, in a foreach, index.")
    name = request.user.get_username()
    query = {"team": access.team.slug, "pipeline": pipeline, "run": run, "step": step}
    if index:
        query["index"] = index
    target = f"{settings.CELLAR_HUB_PUBLIC_URL.rstrip('/')}/user/{name}/cellar/pull?{urlencode(query)}"
    polling = request.GET.get("poll") == "1"
    if polling:
        state, error = _state_or_error(lambda: HubClient().server_state(name))
    else:
        state, error = _state_or_error(
            lambda: services.workspace_start(user=request.user, profile=request.GET.get("profile", "cpu"))
        )
    if state is not None and state.state == "running":
        if polling:
            response = HttpResponse(status=200)
            response["HX-Redirect"] = target
            return response
        return redirect(target)
    context = {
        **_context(request, access, state, error),
        "where": f"{pipeline} #{run} · {step}" + (f"[{index}]" if index else ""),
        "poll_url": f"{request.path}?{urlencode({**query, 'poll': '1'})}",
    }
    return render(request, "workspaces/open.html" if not polling else "workspaces/_opening.html", context)
