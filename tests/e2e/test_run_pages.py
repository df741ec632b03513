"""Run pages in a real browser: a run's page updating while the run goes (htmx polling, no reload),
a foreach's progress bar, the logs and error of a failing task with "Debug in a notebook", retry of
that task and resume of a failed run from the pages, a viewer without buttons, and the team's
notice of the failed production run.

The run is driven by the engine tests' FakeWorker between the browser's checks: the real step code
runs in-process, its stdout/stderr are stored as the task's logs the way a pool agent stores them.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.execute import ArtifactRef, StepFailed, execute_step, store_value
from cellar.pipelines.spec import PipelineSpec
from cellar.pipelines.wire import FAILED, SUCCEEDED, TaskReport
from cellar_server.pipelines import services
from cellar_server.pipelines.engine.runs import run_create
from cellar_server.pipelines.models import PipelineRun
from cellar_server.teams.actors import Actor
from cellar_server.teams.roles import scopes_for
from tests.e2e.conftest import SCREENSHOTS, sign_in, snap
from tests.pipelines.engine.conftest import Assigned, FakeWorker, build_notebook, cell

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIVE = 15_000  # ms: a few htmx polls (every 2 s) on a loaded machine


def scores_notebook():
    return build_notebook(
        cell("n = 6", "parameters"),
        cell("items = list(range(n))", "step:load"),
        cell(
            "print(f'scoring element {k}')\nif k == 4:\n    raise RuntimeError(f'element {k} has no score')\n"
            "score = k * 10",
            "step:score",
            "foreach:items:k",
        ),
        cell("total = sum(score)\nprint('total', total)", "step:total", "join"),
    )


class LoggingWorker(FakeWorker):
    """FakeWorker whose executed tasks carry their stdout/stderr as logs, as a pool agent's do."""

    def execute(self, assigned: Assigned) -> TaskReport:
        if assigned.item.kind == "expand":
            return super().execute(assigned)
        run = PipelineRun.all_teams.select_related("version").get(pk=assigned.run)
        spec = PipelineSpec.from_dict(run.version.spec)
        step, item = spec.step(assigned.step), assigned.item
        inputs = {
            name: [ArtifactRef.from_dict(r) for r in ref] if isinstance(ref, list) else ArtifactRef.from_dict(ref)
            for name, ref in item.inputs.items()
        }
        base = dict(task=item.task, lease=item.lease, token=item.token)
        try:
            result = execute_step(
                step,
                parameters=run.parameters,
                inputs=inputs,
                item=ArtifactRef.from_dict(item.item) if item.item else None,
                store=self.store,
                team=assigned.team,
                source=spec.source.get(step.name),
            )
        except StepFailed as exc:
            return TaskReport(
                **base, state=FAILED, error=exc.to_dict(), logs=self._logs(assigned, exc.stdout, exc.stderr)
            )
        outputs = {name: ref.to_dict() for name, ref in result.outputs.items()}
        logs = self._logs(assigned, result.stdout, result.stderr)
        return TaskReport(**base, state=SUCCEEDED, outputs=outputs, logs=logs)

    def _logs(self, assigned: Assigned, out: str, err: str) -> dict:
        found = {}
        for stream, text in (("stdout", out), ("stderr", err)):
            if text:
                found[stream] = store_value(text, store=self.store, team=assigned.team, inline=False).to_dict()
        return found

    def round(self, run: PipelineRun, *, only=None, override=None) -> None:
        """One dispatch: take what is ready, run it (or only the ones `only(a)` keeps)."""
        assigned = [a for a in self.take(run) if only is None or only(a)]
        self.claim(assigned)
        reports = [override(a) if override and override(a) else self.execute(a) for a in assigned]
        self.report(reports)


@pytest.fixture
def scores(team, members, settings, tmp_path, monkeypatch):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'store'}"
    sent = []
    from cellar_server.celery import app
    from cellar_server.pipelines.tasks import notify_run_failed

    def send_task(name, args=None, **kwargs):  # no control worker here: run the notice task in-process
        sent.append(name)
        if name == "cellar.pipelines.notify_run_failed":
            notify_run_failed.apply(args=args)

    monkeypatch.setattr(app, "send_task", send_task)
    version = services.pipeline_version_create(
        team=team,
        pipeline_name="scores",
        notebook=scores_notebook(),
        notebook_name="scores.ipynb",
        actor=Actor(user=members["editor"]),
        scopes=scopes_for("admin"),
        production=True,
    ).version
    worker = LoggingWorker(LocalArtifactStore(tmp_path / "store"))

    def start(**kwargs) -> PipelineRun:
        return run_create(
            team=team,
            pipeline=version.pipeline,
            version=version,
            parameters={},
            actor=Actor(user=members["editor"]),
            **kwargs,
        )

    return start, worker


def node(page: Page, step: str):
    return page.get_by_test_id("dag").locator(f'a.dag-node[data-step="{step}"]')


def test_a_run_page_follows_the_run_then_retry_and_resume_from_the_pages(page: Page, open_page, scores, members, team):
    start, worker = scores
    run = start()
    sign_in(page, "editor-user", shots="runs-editor")
    page.goto("/t/acme/pipelines/scores/runs/")
    expect(page.get_by_test_id("run-table").locator("tr[data-run='1']")).to_contain_text("queued")
    page.get_by_role("link", name="#1").click()
    expect(page).to_have_url(re.compile(r"/t/acme/pipelines/scores/runs/1/$"))
    expect(node(page, "load")).to_have_attribute("data-state", "queued")
    expect(node(page, "total")).to_have_attribute("data-state", "pending")
    snap(page, "run-queued")

    # The page updates by itself as the worker goes: load, then the expansion, then half the elements.
    worker.round(run)
    expect(node(page, "load")).to_have_attribute("data-state", "succeeded", timeout=LIVE)
    expect(page.get_by_test_id("run-state")).to_have_text("running", timeout=LIVE)
    worker.round(run)  # the expansion: six elements
    worker.round(run, only=lambda a: a.item.index in (0, 1, 2))
    fan = page.get_by_test_id("foreach-progress").locator(".fan[data-step='score']")
    expect(fan.get_by_test_id("fan-count")).to_have_text("3/6", timeout=LIVE)
    expect(node(page, "score")).to_have_attribute("data-state", "running")
    snap(page, "run-foreach-progress")
    page.get_by_test_id("foreach-progress").screenshot(path=SCREENSHOTS / "run-foreach-progress-bar.png")

    # The rest: element 4 raises; the run fails and the page stops polling.
    worker.round(run)
    expect(page.get_by_test_id("run-state")).to_have_text("failed", timeout=LIVE)
    expect(node(page, "score")).to_have_attribute("data-state", "failed")
    expect(node(page, "total")).to_have_attribute("data-state", "upstream_failed")
    expect(fan).to_contain_text("1 failed")
    expect(page.get_by_test_id("run-error")).to_contain_text("RuntimeError")
    expect(page.get_by_test_id("run-error")).to_contain_text("element 4 has no score")
    expect(page.get_by_test_id("run-live")).not_to_have_attribute("hx-trigger", re.compile("."))
    snap(page, "run-failed")
    page.get_by_test_id("dag-card").screenshot(path=SCREENSHOTS / "run-failed-dag.png")

    # The failing task: its logs, its error with the traceback, how to debug it in a notebook.
    page.get_by_test_id("failed-task-link").click()
    expect(page.get_by_test_id("task-state")).to_have_text("failed")
    expect(page.get_by_test_id("log-stdout")).to_contain_text("scoring element 4")
    expect(page.get_by_test_id("task-error")).to_contain_text("element 4 has no score")
    expect(page.get_by_test_id("task-error")).to_contain_text("line 3")
    expect(page.get_by_test_id("pull-command")).to_have_text("cellar pull scores/1 --step score --index 4")
    expect(page.get_by_test_id("load-snippet")).to_contain_text('cellar.load_task("scores/1", "score", index=4)')
    expect(page.get_by_test_id("task-inputs").locator("tr[data-input='k']")).to_contain_text("element 4")
    snap(page, "run-task-failed")

    # Retry it from the page; this time it succeeds, the join follows, the run page turns green.
    page.get_by_test_id("retry-task").click()
    expect(page).to_have_url(re.compile(r"/runs/1/$"))
    expect(page.locator(".msg.success")).to_contain_text("Task score[4] is queued again")
    expect(page.get_by_test_id("run-state")).to_have_text("running")
    worker.round(run, override=lambda a: worker.succeed(a, score=40) if a.step == "score" else None)
    worker.round(run)  # the join
    expect(page.get_by_test_id("run-state")).to_have_text("succeeded", timeout=LIVE)
    expect(node(page, "total")).to_have_attribute("data-state", "succeeded")
    expect(page.get_by_test_id("foreach-progress").get_by_test_id("fan-count")).to_have_text("6/6")
    snap(page, "run-retried-succeeded")

    # Metrics the run logged (tracking) are listed and charted with Plotly on its page.
    from cellar_server.tracking.services.runs import run_get, run_log_batch

    tracked = run_get(team=team, run_id=PipelineRun.all_teams.get(pk=run.pk).tracking_run)
    points = [{"key": "loss", "value": 1 / (i + 1), "timestamp": i, "step": i} for i in range(20)]
    run_log_batch(run=tracked, metrics=points)
    page.reload()
    expect(page.get_by_test_id("run-metrics").locator("tr[data-metric='loss']")).to_contain_text("0.05")
    page.get_by_test_id("run-metrics").scroll_into_view_if_needed()  # charts load when they come into view
    chart = page.locator(".chart-slot[data-key=loss] .tchart[data-rendered=true] svg.main-svg").first
    expect(chart).to_be_attached(timeout=30_000)
    page.get_by_test_id("run-metrics").screenshot(path=SCREENSHOTS / "run-metrics.png")

    # A second run fails; resume it from its page: a new run that reuses what finished.
    second = start(use_cache=False)
    for _ in range(3):
        worker.round(second)
    page.goto("/t/acme/pipelines/scores/runs/2/")
    expect(page.get_by_test_id("run-state")).to_have_text("failed")
    page.get_by_test_id("resume-run").click()
    expect(page).to_have_url(re.compile(r"/runs/3/$"))
    expect(page.locator(".msg.success")).to_contain_text("Run #3 resumes run #2")
    third = PipelineRun.all_teams.get(number=3)
    expect(page.get_by_test_id("run-tasks").locator("tr[data-state='succeeded']").first).to_be_visible()
    worker.round(third, override=lambda a: worker.succeed(a, score=40) if a.step == "score" else None)
    worker.round(third)
    expect(page.get_by_test_id("run-state")).to_have_text("succeeded", timeout=LIVE)
    snap(page, "run-resumed-succeeded")
    page.goto("/t/acme/pipelines/scores/runs/")
    expect(page.get_by_test_id("run-table").locator("tr[data-run='3']")).to_contain_text("resumes #2")
    snap(page, "runs-list")

    # A viewer reads everything and sees no button; the team home shows the failed-run notices.
    viewer = open_page()
    sign_in(viewer, "viewer-user", shots="runs-viewer")
    viewer.goto("/t/acme/pipelines/scores/runs/2/")
    expect(viewer.get_by_test_id("run-state")).to_have_text("failed")
    expect(viewer.get_by_test_id("resume-run")).to_have_count(0)
    viewer.goto("/t/acme/")
    expect(viewer.get_by_test_id("notices-badge")).to_contain_text("scores #2 (production v1) failed in score[4]")
    expect(viewer.get_by_test_id("notice-count")).to_have_text("2")
    snap(viewer, "team-home-notices")

    # An admin sets the team's webhook on the notifications page and marks the notices seen.
    admin = open_page()
    sign_in(admin, "admin-user", shots="runs-admin")
    admin.goto("/t/acme/pipelines/")
    admin.get_by_test_id("notifications-link").click()
    expect(admin.get_by_test_id("notices").locator("tr[data-notice]")).to_have_count(2)
    admin.get_by_test_id("webhook-url").fill("https://hooks.example.com/services/T0/B0/x")
    admin.get_by_test_id("webhook-save").click()
    expect(admin.locator(".msg.success")).to_contain_text("Webhook saved")
    expect(admin.get_by_test_id("webhook-url")).to_have_value("https://hooks.example.com/services/T0/B0/x")
    snap(admin, "pipeline-notifications")
    admin.get_by_test_id("mark-seen").click()
    expect(admin.get_by_test_id("mark-seen")).to_have_count(0)
    admin.goto("/t/acme/")
    expect(admin.get_by_test_id("notices-badge")).to_have_attribute("data-count", "0")
