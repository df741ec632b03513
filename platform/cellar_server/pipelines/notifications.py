"""Notifications: a failed run of a pipeline's production version tells its team, once per run.

When the engine closes a run `failed` it asks for `cellar.pipelines.notify_run_failed` on commit
(`run_failed_soon`). That control task (tasks.py, thin) calls `run_failed_notify`, which:

1. keeps only runs that ended `failed` on the version the `production` alias points at;
2. records the in-app notice (`RunNotice`, unique per run: a second delivery of the task, or a
   retried task failing the run again, finds it and adds nothing);
3. POSTs a JSON message to the team's webhook URL, if one is set, with a timeout, holding the
   notice's row lock so two deliveries of the task never both send. A refused or unreachable
   endpoint is recorded (`webhook_state` failed, the status or error) and retried by the task
   a few times; a notice whose webhook was sent is never sent again.

The web request never waits on the webhook: it only enqueues (on commit). Settings and notices
are read and changed through the functions below; pages in run_pages.py / notice_pages.py.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.models import (
    RUN_FAILED,
    WEBHOOK_FAILED,
    WEBHOOK_NONE,
    WEBHOOK_SENT,
    NotificationSettings,
    PipelineRun,
    RunNotice,
)
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record

logger = logging.getLogger(__name__)
TASK_NAME = "cellar.pipelines.notify_run_failed"
USER_AGENT = "Cellar-Webhook/1"


def webhook_timeout() -> float:
    """Seconds to connect and to read: settings.CELLAR_WEBHOOK_TIMEOUT, else the variable, else 5."""
    value = getattr(django_settings, "CELLAR_WEBHOOK_TIMEOUT", None) or os.environ.get("CELLAR_WEBHOOK_TIMEOUT")
    try:
        return max(float(value), 0.1) if value else 5.0
    except ValueError:
        return 5.0


# --- settings ---------------------------------------------------------------------------------------------


def settings_for(*, team: Team) -> NotificationSettings | None:
    return NotificationSettings.all_teams.filter(team=team).first()


@transaction.atomic
def webhook_set(*, team: Team, url: str, actor: Actor) -> NotificationSettings:
    """Set (or clear, with "") the team's webhook URL; audited. http(s) only."""
    url = (url or "").strip()
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ServiceError("invalid_webhook_url", f"'{url[:80]}' is not an http(s) URL.") from None
        if len(url) > 500:
            raise ServiceError("invalid_webhook_url", "The webhook URL is longer than 500 characters.")
    row, _ = NotificationSettings.all_teams.select_for_update().get_or_create(team=team)
    before = row.webhook_url
    row.webhook_url, row.updated_by, row.updated_at = url, actor.user, timezone.now()
    row.save(update_fields=["webhook_url", "updated_by", "updated_at"])
    if before != url:
        audit_record(
            team=team,
            actor=actor,
            verb="pipelines.webhook.update",
            target_type="notification_settings",
            target_id=row.pk,
            target_repr="pipeline run webhook",
            details={"from": _redact(before), "to": _redact(url)},
        )
    return row


def _redact(url: str) -> str:
    """Audit the host, not a token that may sit in the path or query of a webhook URL."""
    if not url:
        return ""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") or parts.query else url


# --- the failed-run notice ----------------------------------------------------------------------------------


def run_failed_soon(run: PipelineRun) -> None:
    """Ask the control worker to notify once the run's closing commits (never raises: the web or
    control request that closed the run must not fail because the broker is down)."""
    from cellar_server.pipelines.models import Pipeline

    if not Pipeline.all_teams.filter(pk=run.pipeline_id, production_id=run.version_id).exists():
        return  # only runs of the production version notify
    team_id, run_id = run.team_id, run.pk

    def send() -> None:
        from cellar_server.celery import app

        try:
            app.send_task(TASK_NAME, args=[team_id, run_id], ignore_result=True)
        except Exception as exc:  # broker down: the notice is lost for this run; say so
            logger.warning("pipelines: could not request the failure notice of run %s: %s", run_id, exc)

    transaction.on_commit(send)


@dataclass
class NotifyOutcome:
    notice: RunNotice | None
    retry: bool = False  # the webhook failed and may succeed later


def _message(run: PipelineRun) -> str:
    error = run.error or {}
    where = error.get("step") or "?"
    if error.get("index") is not None:
        where += f"[{error['index']}]"
    text = f"{error.get('type', 'Error')}: {error.get('message', '')}".strip()
    return f"{run.pipeline.name} #{run.number} (production v{run.version.number}) failed in {where}: {text}"[:500]


def run_failed_notify(*, team_id: int, run_id: int, base_url: str = "") -> NotifyOutcome:
    """Record the notice of a failed production run and deliver its webhook (see the module doc)."""
    run = (
        PipelineRun.all_teams.select_related("pipeline", "version", "team")
        .defer("version__spec", "version__warnings")
        .filter(pk=run_id, team_id=team_id)
        .first()
    )
    if run is None or run.state != RUN_FAILED or run.pipeline.production_id != run.version_id:
        return NotifyOutcome(None)
    try:
        with transaction.atomic():
            notice = RunNotice.all_teams.create(
                team_id=team_id, run=run, pipeline_id=run.pipeline_id, message=_message(run)
            )
    except IntegrityError:  # the task ran before for this run
        notice = RunNotice.all_teams.get(run_id=run.pk)
    return _deliver(notice=notice, run=run, base_url=base_url)


def _deliver(*, notice: RunNotice, run: PipelineRun, base_url: str) -> NotifyOutcome:
    config = settings_for(team=run.team)
    url = config.webhook_url if config else ""
    with transaction.atomic():
        notice = RunNotice.all_teams.select_for_update().get(pk=notice.pk)
        if notice.webhook_state == WEBHOOK_SENT:
            return NotifyOutcome(notice)
        if not url:
            if notice.webhook_state != WEBHOOK_NONE:
                notice.webhook_state = WEBHOOK_NONE
                notice.save(update_fields=["webhook_state"])
            return NotifyOutcome(notice)
        notice.webhook_attempts += 1
        body = webhook_body(run=run, notice=notice, base_url=base_url)
        try:
            response = requests.post(
                url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
                timeout=webhook_timeout(),
                allow_redirects=False,
            )
            notice.webhook_status = response.status_code
            ok = 200 <= response.status_code < 300
            notice.webhook_error = "" if ok else f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            ok = False
            notice.webhook_status = None
            notice.webhook_error = f"{type(exc).__name__}: {exc}"[:300]
        notice.webhook_state = WEBHOOK_SENT if ok else WEBHOOK_FAILED
        notice.webhook_sent_at = timezone.now() if ok else None
        notice.save(
            update_fields=["webhook_state", "webhook_attempts", "webhook_status", "webhook_error", "webhook_sent_at"]
        )
    if not ok:
        logger.warning("pipelines: webhook for run %s failed: %s", run.pk, notice.webhook_error)
    return NotifyOutcome(notice, retry=not ok)


def webhook_body(*, run: PipelineRun, notice: RunNotice, base_url: str = "") -> dict[str, Any]:
    """The JSON a webhook receives (also a Slack-compatible `text`)."""
    error = run.error or {}
    path = f"/t/{run.team.slug}/pipelines/{run.pipeline.name}/runs/{run.number}/"
    return {
        "event": "pipeline_run.failed",
        "text": notice.message,
        "team": run.team.slug,
        "pipeline": run.pipeline.name,
        "run": run.number,
        "version": {"id": run.version.hash, "number": run.version.number, "production": True},
        "error": {k: error.get(k) for k in ("step", "index", "cell", "line", "type", "message")},
        "url": (base_url.rstrip("/") + path) if base_url else path,
        "created_at": notice.created_at.isoformat(),
    }


# --- reading and acknowledging notices ----------------------------------------------------------------------


def open_notices(*, team: Team) -> QuerySet[RunNotice]:
    return RunNotice.all_teams.filter(team=team, seen_at__isnull=True).order_by("-created_at")


def recent_notices(*, team: Team) -> QuerySet[RunNotice]:
    return RunNotice.all_teams.filter(team=team).select_related("run", "pipeline").order_by("-created_at")


def notices_mark_seen(*, team: Team, actor: Actor) -> int:
    return RunNotice.all_teams.filter(team=team, seen_at__isnull=True).update(
        seen_at=timezone.now(), seen_by=actor.user
    )
