"""Control-plane Celery tasks (queue `control`): thin wrappers around the engine's services.

They take no user input and return small JSON counts (results are ignored: no result backend
traffic). Beat runs `cellar.engine.reconcile` and `cellar.engine.schedules` (CELERY_BEAT_SCHEDULE
in settings.py); `cellar.engine.dispatch` is requested by engine.dispatch.dispatch_soon().
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from cellar_server.pipelines.engine import dispatch, reconcile, schedules

logger = logging.getLogger(__name__)


@shared_task(name="cellar.engine.dispatch", ignore_result=True)
def engine_dispatch(pool: str | None = None) -> int:
    # Cleared before reading the database: a request made from now on enqueues a new dispatch,
    # so no commit can fall between this dispatch's reads and the next one.
    dispatch.dispatch_pending_clear()
    return dispatch.dispatch_pool(pool=pool) if pool else dispatch.dispatch_all()


@shared_task(name="cellar.engine.reconcile", ignore_result=True)
def engine_reconcile() -> dict[str, int]:
    return reconcile.reconcile()


@shared_task(name="cellar.engine.schedules", ignore_result=True)
def engine_schedules() -> dict[str, int]:
    return schedules.schedules_tick()


@shared_task(name="cellar.pipelines.notify_run_failed", bind=True, ignore_result=True, max_retries=3)
def notify_run_failed(self, team_id: int, run_id: int) -> str:
    """A failed production run: its in-app notice and webhook, once (notifications.py)."""
    from django.conf import settings

    from cellar_server.pipelines import notifications

    outcome = notifications.run_failed_notify(team_id=team_id, run_id=run_id, base_url=settings.CELLAR_PUBLIC_URL)
    if outcome.retry and self.request.retries < self.max_retries:
        raise self.retry(countdown=30 * 2**self.request.retries)
    return outcome.notice.webhook_state if outcome.notice else "skipped"


@worker_ready.connect
def _reconcile_at_start(sender=None, **kwargs) -> None:
    """A control worker that starts (after a crash, a deploy) reconciles at once rather than at
    the first beat: leases that expired while nothing watched are requeued, lost messages re-sent."""
    app = getattr(sender, "app", None)
    if app is None or app.main != "cellar_server":  # only the control app, not a pool agent
        return
    try:
        # Through the starting worker's own app: a shared task resolves to the *current* app,
        # which in a process that also made a pool agent's app would be the wrong broker.
        app.send_task("cellar.engine.reconcile", ignore_result=True)
    except Exception as exc:  # the beat reconciles anyway
        logger.warning("engine: could not request the start-up reconcile: %s", exc)
