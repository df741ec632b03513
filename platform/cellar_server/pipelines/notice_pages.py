"""Notification pages: the team's failed-production-run notices with their webhook delivery, the
webhook URL (team admins edit it), and the small badge the team home and the pipelines list load."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cellar_server.pipelines import notifications
from cellar_server.teams.pages import page_actor, run_service, team_page
from cellar_server.teams.selectors import TeamAccess

READ, RUN, ADMIN = "pipelines:read", "pipelines:run", "team:write"
NOTICES_SHOWN = 50
BADGE_SHOWN = 3


@team_page(READ)
def notifications_page(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    config = notifications.settings_for(team=access.team)
    context = {
        "access": access,
        "webhook_url": config.webhook_url if config else "",
        "can_edit": ADMIN in access.scopes,
        "can_ack": RUN in access.scopes,
        "notices": list(notifications.recent_notices(team=access.team)[:NOTICES_SHOWN]),
        "open_count": notifications.open_notices(team=access.team).count(),
    }
    return render(request, "pipelines/notifications.html", context)


@team_page(ADMIN)
@require_POST
def webhook_update(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    url = request.POST.get("webhook_url", "")
    run_service(
        request,
        lambda: notifications.webhook_set(team=access.team, url=url, actor=page_actor(request)),
        success="Webhook saved: failed production runs are posted there." if url.strip() else "Webhook removed.",
    )
    return redirect("pipelines:notifications", team_slug=access.team.slug)


@team_page(RUN)
@require_POST
def notices_seen(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    notifications.notices_mark_seen(team=access.team, actor=page_actor(request))
    return redirect("pipelines:notifications", team_slug=access.team.slug)


@team_page(READ)
def notices_badge(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """The open notices as a small card (htmx-loaded by the team home and the pipelines list)."""
    open_notices = notifications.open_notices(team=access.team).select_related("run", "pipeline")
    context = {"access": access, "latest": list(open_notices[:BADGE_SHOWN]), "count": open_notices.count()}
    return render(request, "pipelines/_notices_badge.html", context)
