"""The compute page: per pool its demand, running tasks, workers and their utilization, a chart
of workers vs demand over the last hour; the team's usage against its quota; tasks a GPU pool
ran on the CPU under CELLAR_GPU_FALLBACK."""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from cellar_server.compute import selectors, services
from cellar_server.compute.forms import PoolForm
from cellar_server.teams.pages import run_service, team_page
from cellar_server.teams.selectors import TeamAccess

READ = "compute:read"
HISTORY = timedelta(hours=1)


def _chart(samples, *, since, until) -> str:
    """Plotly traces for one pool's history (JSON for the page's script)."""
    at = [sample.at.isoformat() for sample in samples]
    return json.dumps(
        {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "at": at,
            "workers": [sample.workers for sample in samples],
            "demand": [sample.demand for sample in samples],
            "running": [sample.running for sample in samples],
        }
    )


@team_page(READ)
def pools(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    statuses = selectors.pool_statuses()
    history = selectors.pool_history(since=HISTORY)
    until = timezone.now()
    rows = [
        {
            "status": status,
            "chart": _chart(history.get(status.pool.name, []), since=until - HISTORY, until=until),
            "points": len(history.get(status.pool.name, [])),
        }
        for status in statuses
    ]
    context = {
        "access": access,
        "rows": rows,
        "usage": selectors.team_usage(team=access.team),
        "fallback_enabled": selectors.gpu_fallback_enabled(),
        "fallback_tasks": selectors.fallback_tasks(team_id=access.team.id),
        "is_staff": request.user.is_staff,
        "forms": {row["status"].pool.name: _form(row["status"].pool) for row in rows} if request.user.is_staff else {},
        "any_workers": any(status.workers for status in statuses),
    }
    return render(request, "compute/pools.html", context)


def _form(pool, data=None) -> PoolForm:
    initial = {
        "min_workers": pool.min_workers,
        "max_workers": pool.max_workers,
        "concurrency": pool.concurrency,
        "gpus": pool.gpus,
        "memory": pool.memory or "",
    }
    return PoolForm(data, initial=initial, prefix=pool.name)


@require_POST
@team_page(READ)
def pool_edit(request: HttpRequest, access: TeamAccess, pool_name: str) -> HttpResponse:
    """Platform admins change a pool's size from the compute page (POST/redirect/GET)."""
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins change pools.")
    pool = selectors.pool_for_name(name=pool_name)
    if pool is None:
        raise Http404("No such pool.")
    form = _form(pool, request.POST)
    if form.is_valid():
        run_service(
            request,
            lambda: services.pool_update(user=request.user, pool=pool, **form.changes()),
            success=f"Pool {pool.name} saved.",
        )
    else:
        messages.error(request, "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items()))
    return redirect("compute:pools", team_slug=access.team.slug)
