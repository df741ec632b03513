"""The compute page: per pool its demand, running tasks, workers and their utilization, a chart
of workers vs demand over the last hour; the team's usage against its quota; tasks a GPU pool
ran on the CPU under CELLAR_GPU_FALLBACK."""

from __future__ import annotations

import json
from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from cellar_server.compute import selectors
from cellar_server.teams.pages import team_page
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
        "any_workers": any(status.workers for status in statuses),
    }
    return render(request, "compute/pools.html", context)
