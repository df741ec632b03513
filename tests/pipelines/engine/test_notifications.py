"""Notifications: a failed run of the production version records one in-app notice and POSTs one
webhook (to a real HTTP server the test starts), however often the control task runs; other runs
notify nothing; an endpoint that fails is recorded and retried; the engine asks for the notice on
commit; the settings page lets admins (only) set the webhook; the team home shows the badge."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cellar_server.pipelines import notifications
from cellar_server.pipelines.models import NotificationSettings, RunNotice
from cellar_server.pipelines.services import pipeline_production_move
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import AuditEvent
from tests.conftest import ROLES
from tests.pipelines.engine.conftest import failing_notebook, linear_notebook

pytestmark = pytest.mark.django_db


class Hook:
    """A local HTTP endpoint that records what it is sent and answers `status`."""

    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                hook.received.append(
                    {"body": json.loads(self.rfile.read(length)), "agent": self.headers.get("User-Agent")}
                )
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cellar"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = Hook()
    yield server
    server.close()


@pytest.fixture
def production_failure(team, members, promote, start_run, worker):
    version = promote(failing_notebook(), "nightly")
    pipeline_production_move(team=team, pipeline=version.pipeline, version=version, actor=Actor(members["admin"]))
    run = worker.drain(start_run(version))
    assert run.state == "failed"
    return run


def notify(run):
    return notifications.run_failed_notify(team_id=run.team_id, run_id=run.pk, base_url="http://cellar.test")


def test_a_failed_production_run_notifies_once(team, members, production_failure, hook):
    notifications.webhook_set(team=team, url=hook.url, actor=Actor(members["admin"]))
    first = notify(production_failure)
    again = notify(production_failure)  # the control task delivered twice
    assert first.notice.pk == again.notice.pk and RunNotice.all_teams.count() == 1
    assert first.retry is False and again.notice.webhook_state == "sent" and again.notice.webhook_status == 200
    assert len(hook.received) == 1
    body = hook.received[0]["body"]
    assert body["event"] == "pipeline_run.failed" and body["pipeline"] == "nightly" and body["run"] == 1
    assert body["error"]["step"] == "boom" and body["error"]["line"] == 2 and body["error"]["type"] == "ValueError"
    assert body["url"] == "http://cellar.test/t/acme/pipelines/nightly/runs/1/"
    assert "nightly #1 (production v1) failed in boom: ValueError: bad input" == body["text"]
    assert hook.received[0]["agent"] == "Cellar-Webhook/1"


def test_without_a_webhook_the_notice_is_still_recorded(production_failure):
    outcome = notify(production_failure)
    assert outcome.notice.webhook_state == "none" and RunNotice.all_teams.get().message.startswith("nightly #1")


def test_runs_of_other_versions_and_successes_notify_nothing(team, members, promote, start_run, worker, hook):
    notifications.webhook_set(team=team, url=hook.url, actor=Actor(members["admin"]))
    failing = promote(failing_notebook(), "adhoc")  # never made production
    failed = worker.drain(start_run(failing))
    ok = promote(linear_notebook(), "linear")
    pipeline_production_move(team=team, pipeline=ok.pipeline, version=ok, actor=Actor(members["admin"]))
    succeeded = worker.drain(start_run(ok))
    assert failed.state == "failed" and succeeded.state == "succeeded"
    assert notify(failed).notice is None and notify(succeeded).notice is None
    assert RunNotice.all_teams.count() == 0 and hook.received == []


def test_a_failing_endpoint_is_recorded_and_retried_until_it_answers(team, members, production_failure):
    hook = Hook(status=503)
    try:
        notifications.webhook_set(team=team, url=hook.url, actor=Actor(members["admin"]))
        outcome = notify(production_failure)
        assert outcome.retry is True and outcome.notice.webhook_state == "failed"
        assert outcome.notice.webhook_status == 503 and "HTTP 503" in outcome.notice.webhook_error
        hook.status = 204
        outcome = notify(production_failure)
        assert (
            outcome.retry is False and outcome.notice.webhook_state == "sent" and outcome.notice.webhook_attempts == 2
        )
        assert len(hook.received) == 2 and notify(production_failure).notice.webhook_attempts == 2
    finally:
        hook.close()


def test_an_unreachable_endpoint_fails_within_the_timeout(team, members, production_failure, settings):
    settings.CELLAR_WEBHOOK_TIMEOUT = 0.5
    notifications.webhook_set(team=team, url="http://127.0.0.1:9/nobody", actor=Actor(members["admin"]))
    outcome = notify(production_failure)
    assert outcome.retry is True and outcome.notice.webhook_state == "failed"
    assert "ConnectionError" in outcome.notice.webhook_error


def test_the_control_task_runs_the_service(team, members, production_failure, hook):
    from cellar_server.pipelines.tasks import notify_run_failed

    notifications.webhook_set(team=team, url=hook.url, actor=Actor(members["admin"]))
    assert notify_run_failed.apply(args=[team.pk, production_failure.pk]).get() == "sent"
    assert notify_run_failed.apply(args=[team.pk, production_failure.pk]).get() == "sent"
    assert len(hook.received) == 1


def test_the_engine_asks_for_the_notice_when_a_production_run_fails(
    team, members, promote, start_run, worker, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    from cellar_server.celery import app

    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: sent.append((name, args)))
    version = promote(failing_notebook(), "nightly")
    pipeline_production_move(team=team, pipeline=version.pipeline, version=version, actor=Actor(members["admin"]))
    run = start_run(version)
    with django_capture_on_commit_callbacks(execute=True):
        run = worker.drain(run)
    assert run.state == "failed"
    assert [s for s in sent if s[0] == notifications.TASK_NAME] == [(notifications.TASK_NAME, [team.pk, run.pk])]


def test_webhook_urls_are_checked_and_audited_without_their_secret(team, members):
    from cellar_server.core.exceptions import ServiceError

    with pytest.raises(ServiceError) as caught:
        notifications.webhook_set(team=team, url="ftp://example.com/x", actor=Actor(members["admin"]))
    assert caught.value.code == "invalid_webhook_url"
    notifications.webhook_set(team=team, url="https://hooks.example.com/T0/SECRET", actor=Actor(members["admin"]))
    event = AuditEvent.all_teams.get(verb="pipelines.webhook.update")
    assert event.details == {"from": "", "to": "https://hooks.example.com/…"}


# --- pages --------------------------------------------------------------------------------------------------


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_set_the_webhook_from_the_page(client, members, role):
    c = login(client, members[role])
    page = c.get("/t/acme/pipelines/notifications/").content.decode()
    response = c.post("/t/acme/pipelines/notifications/webhook/", {"webhook_url": "https://hooks.example.com/a"})
    if role in ("admin", "owner"):
        assert 'data-testid="webhook-url"' in page and response.status_code == 302
        assert NotificationSettings.all_teams.get().webhook_url == "https://hooks.example.com/a"
    else:
        assert 'data-testid="webhook-url"' not in page and response.status_code == 403
        assert not NotificationSettings.all_teams.exists()


def test_the_notices_show_on_the_team_home_badge_until_seen(client, members, production_failure, outsider):
    notify(production_failure)
    c = login(client, members["viewer"])
    assert "/t/acme/pipelines/notifications/badge/" in c.get("/t/acme/").content.decode()  # htmx loads it
    badge = c.get("/t/acme/pipelines/notifications/badge/").content.decode()
    assert 'data-count="1"' in badge and "nightly #1 (production v1) failed in boom" in badge
    assert c.post("/t/acme/pipelines/notifications/seen/").status_code == 403  # viewers only read
    c = login(client, members["editor"])
    assert c.post("/t/acme/pipelines/notifications/seen/").status_code == 302
    assert 'data-count="0"' in c.get("/t/acme/pipelines/notifications/badge/").content.decode()
    assert login(client, outsider).get("/t/acme/pipelines/notifications/badge/").status_code == 404
