"""Control task: keep running tests' aggregates fresh (beat: CELLAR_ABTEST_REFRESH_SECONDS)."""

from __future__ import annotations

import logging

from celery import shared_task

from cellar_server.abtests.aggregates import aggregates_refresh
from cellar_server.abtests.models import ABTest

logger = logging.getLogger(__name__)


@shared_task(name="cellar.abtests.refresh", ignore_result=True)
def abtests_refresh() -> int:
    """Recompute the current phase's aggregates of every running test; one failing test does
    not stop the others. Returns how many were refreshed."""
    done = 0
    for test in ABTest.all_teams.filter(status=ABTest.RUNNING).order_by("pk"):
        try:
            aggregates_refresh(test=test)
            done += 1
        except Exception:
            logger.exception("refreshing A/B test %s failed", test.pk)
    return done
