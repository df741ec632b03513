"""Control tasks of the data layer: the garbage collector, on beat (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task

from cellar_server.data import gc
from cellar_server.teams.models import Team

logger = logging.getLogger(__name__)


@shared_task(name="cellar.data.gc", ignore_result=True)
def data_gc(team_id: int | None = None, dry_run: bool = False) -> dict[str, int]:
    """Sweep one team (team_id), or every team one after another; a team that fails is logged
    and the others still run."""
    teams = Team.objects.filter(pk=team_id) if team_id else Team.objects.order_by("pk")
    totals = {"teams": 0, "deleted": 0, "freed_bytes": 0}
    for team in teams:
        try:
            sweep = gc.gc_sweep(team=team, dry_run=dry_run)
        except Exception:
            logger.exception("gc sweep failed", extra={"team": team.slug})
            continue
        totals["teams"] += 1
        totals["deleted"] += sweep.deleted
        totals["freed_bytes"] += sweep.freed_bytes
    return totals
