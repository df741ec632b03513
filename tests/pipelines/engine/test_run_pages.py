"""Run pages: the runs list (and its empty state), a run (live fragments that stop polling when the
run ends, the coloured DAG, fan-out progress, tasks filtered and paginated), a task (attempts,
lineage, logs, "Debug in a notebook"), the buttons by role and across teams, and query counts
that stay the same for a run of thousands of tasks. Browser journey: tests/e2e/test_run_pages.py."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from cellar_server.pipelines.engine.rows import NewTask, insert_tasks
from cellar_server.pipelines.models import PipelineRun
from tests.conftest import ROLES
from tests.pipelines.engine.conftest import failing_notebook, fanout_notebook, fresh, task_of

pytestmark = pytest.mark.django_db

T = "/t/acme/pipelines/"


def login(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def fan_run(promote, start_run, worker, settings, store):
    settings.ARTIFACT_STORE_URL = f"file://{store.root}"
    return worker.drain(start_run(promote(fanout_notebook(), "fan")))


@pytest.fixture
def failed(promote, start_run, worker, settings, store):
    settings.ARTIFACT_STORE_URL = f"file://{store.root}"
    return worker.drain(start_run(promote(failing_notebook(), "flaky")))


def pages_of(run: PipelineRun, name: str) -> list[str]:
    task = task_of(run, "load")
    base = f"{T}{name}/runs/"
    return [base, f"{base}1/", f"{base}1/live/", f"{base}1/tasks/", f"{base}1/tasks/{task.pk}/"]


@pytest.mark.parametrize("role", ROLES)
def test_members_see_the_run_pages_and_only_runners_see_buttons(client, members, failed, role):
    c = login(client, members[role])
    for path in pages_of(failed, "flaky"):
        assert c.get(path).status_code == 200, path
    page = c.get(f"{T}flaky/runs/1/").content.decode()
    boom = c.get(f"{T}flaky/runs/1/tasks/{task_of(failed, 'boom').pk}/").content.decode()
    assert 'data-testid="debug-notebook"' in boom  # debugging is for every reader
    if role == "viewer":
        assert "resume-run" not in page and "retry-task" not in boom
    else:
        assert 'data-testid="resume-run"' in page and 'data-testid="retry-task"' in boom


def test_another_team_gets_404(client, outsider, failed):
    c = login(client, outsider)
    for path in pages_of(failed, "flaky"):
        assert c.get(path).status_code == 404, path
    boom = task_of(failed, "boom")
    assert c.post(f"{T}flaky/runs/1/tasks/{boom.pk}/retry/").status_code == 404
    assert c.post(f"{T}flaky/runs/1/resume/").status_code == 404
    assert fresh(failed).state == "failed" and PipelineRun.all_teams.count() == 1


def test_a_viewer_cannot_act_from_the_pages(client, members, failed):
    c = login(client, members["viewer"])
    boom = task_of(failed, "boom")
    assert c.post(f"{T}flaky/runs/1/tasks/{boom.pk}/retry/").status_code == 403
    assert c.post(f"{T}flaky/runs/1/resume/").status_code == 403
    assert task_of(failed, "boom").state == "failed" and PipelineRun.all_teams.count() == 1


def test_retry_resume_and_cancel_from_the_pages(client, members, failed, promote, start_run):
    c = login(client, members["editor"])
    boom = task_of(failed, "boom")
    response = c.post(f"{T}flaky/runs/1/tasks/{boom.pk}/retry/")
    assert response.status_code == 302 and response["Location"] == f"{T}flaky/runs/1/"
    assert fresh(failed).state == "running" and task_of(failed, "boom").state == "queued"
    response = c.post(f"{T}flaky/runs/1/cancel/")
    assert response.status_code == 302 and fresh(failed).cancel_requested
    assert fresh(failed).state == "cancelled"
    response = c.post(f"{T}flaky/runs/1/resume/")
    assert response.status_code == 302 and response["Location"] == f"{T}flaky/runs/2/"
    assert PipelineRun.all_teams.get(number=2).trigger == "resume"
    # A second resume of the same run is allowed; a refused action is a message, not an error page.
    page = c.post(f"{T}flaky/runs/2/resume/", follow=True).content.decode()
    assert "only a failed or cancelled run can be resumed" in page


def test_the_runs_list_and_its_empty_state(client, members, promote, fan_run):
    c = login(client, members["viewer"])
    body = c.get(f"{T}fan/runs/").content.decode()
    assert 'data-run="1"' in body and 'data-state="succeeded"' in body and "editor-user" in body
    promote(failing_notebook(), "empty")
    empty = c.get(f"{T}empty/runs/").content.decode()
    assert 'data-testid="runs-empty"' in empty and "cellar promote notebook.ipynb --pipeline empty --run" in empty


def test_the_run_page_shows_the_dag_states_progress_and_metrics(client, members, fan_run):
    body = login(client, members["viewer"]).get(f"{T}fan/runs/1/").content.decode()
    assert re.search(r'data-step="square" data-state="succeeded"', body)
    assert 'data-testid="foreach-progress"' in body and ">3/3<" in body
    assert "hx-trigger" not in body  # finished: nothing polls
    assert "<code>n</code>" in body and "<code>3</code>" in body  # parameters
    for state in ("pending", "queued", "dispatched", "running", "succeeded", "failed"):  # the graph's legend
        assert f'<span class="state-key {state}"></span> {state}' in body


def test_a_failed_run_page_names_the_failure_and_the_dag_shows_it(client, members, failed):
    body = login(client, members["viewer"]).get(f"{T}flaky/runs/1/").content.decode()
    assert 'data-step="boom" data-state="failed"' in body and 'data-step="after" data-state="upstream_failed"' in body
    assert "ValueError" in body and "bad input" in body and "line 2" in body


def test_a_running_run_polls_its_fragments(client, members, promote, start_run):
    run = start_run(promote(fanout_notebook(), "fan"))
    c = login(client, members["viewer"])
    body = c.get(f"{T}fan/runs/{run.number}/").content.decode()
    assert body.count('hx-trigger="every 2s"') == 2  # the live summary and the task table
    live = c.get(f"{T}fan/runs/{run.number}/live/").content.decode()
    assert 'data-step="make" data-state="queued"' in live and 'data-step="show" data-state="pending"' in live


def test_the_task_page_shows_lineage_logs_and_the_debug_commands(client, members, failed, fan_run):
    c = login(client, members["viewer"])
    boom = task_of(failed, "boom")
    body = c.get(f"{T}flaky/runs/1/tasks/{boom.pk}/").content.decode()
    assert "cellar pull flaky/1 --step boom" in body
    # "Open in notebook" goes through the user's workspace (workspaces app) to the same notebook
    assert 'href="/t/acme/workspace/open/?pipeline=flaky&amp;run=1&amp;step=boom"' in body
    assert "cellar.load_task(&quot;flaky/1&quot;, &quot;boom&quot;)" in body
    assert 'data-input="x"' in body and f"/tasks/{task_of(failed, 'load').pk}/" in body
    assert "raise ValueError" in body  # the step's code
    plus = task_of(fan_run, "plus", 2)
    body = c.get(f"{T}fan/runs/1/tasks/{plus.pk}/").content.decode()
    assert f"/tasks/{task_of(fan_run, 'square', 2).pk}/" in body  # its input came from square[2]
    assert f"/tasks/{task_of(fan_run, 'total').pk}/" in body  # its output went to the join
    show = task_of(fan_run, "show")
    body = c.get(f"{T}fan/runs/1/tasks/{show.pk}/").content.decode()
    assert 'data-testid="log-stdout"' not in body or "33" in body  # the FakeWorker stores no logs


def test_task_filters_and_pages(client, members, fan_run):
    c = login(client, members["viewer"])
    body = c.get(f"{T}fan/runs/1/tasks/?step=square").content.decode()
    assert body.count('data-step="square" data-state') == 4 and 'data-step="plus" data-state' not in body
    body = c.get(f"{T}fan/runs/1/tasks/?state=failed").content.decode()
    assert "No task is failed" in body


def _big_run(run: PipelineRun, n: int) -> None:
    """Add n finished branch tasks to a run (what a wide fan-out leaves behind): 20,000 in the test."""
    now = timezone.now()
    insert_tasks(
        [
            NewTask(
                team_id=run.team_id,
                run_id=run.pk,
                step="square",
                index=1000 + i,
                kind="step",
                pool="cpu",
                state="succeeded" if i % 7 else "failed",
                created_at=now,
                started_at=now,
                ended_at=now,
                inputs={"items": [{"sha256": "0" * 64, "serializer": "json", "size": 1, "type": "int"}] * 5},
            )
            for i in range(n)
        ]
    )
    PipelineRun.all_teams.filter(pk=run.pk).update(tasks_total=n + 10, tasks_done=n)


def test_query_counts_do_not_grow_with_the_run(
    client, members, fan_run, promote, start_run, worker, django_assert_num_queries
):
    c = login(client, members["viewer"])
    paths = [f"{T}fan/runs/1/", f"{T}fan/runs/1/live/", f"{T}fan/runs/1/tasks/?step=square", f"{T}fan/runs/"]
    small = {}
    for path in paths:
        with django_assert_num_queries(QUERIES[path.split("/runs/")[1]]) as q:
            assert c.get(path).status_code == 200, path
        small[path] = len(q.captured_queries)
    _big_run(fan_run, 20_000)
    for path in paths:
        with django_assert_num_queries(small[path]):
            response = c.get(path)
        assert response.status_code == 200
    assert "Page 1 of 401" in c.get(f"{T}fan/runs/1/tasks/").content.decode()


# Pinned: session, membership, pipeline, run (+ version spec, step counts, metrics, task page).
# A finished run's live fragment is its last poll: it also carries the metrics card (two reads).
QUERIES = {"1/": 12, "1/live/": 10, "1/tasks/?step=square": 8, "": 7}


def test_the_metrics_a_run_logged_show_on_its_page(client, members, team, fan_run):
    from cellar_server.tracking.services.runs import run_get, run_log_batch

    tracked = run_get(team=team, run_id=fan_run.tracking_run)
    run_log_batch(run=tracked, metrics=[{"key": "auc", "value": 0.875, "timestamp": 1, "step": 3}])
    body = login(client, members["viewer"]).get(f"{T}fan/runs/1/").content.decode()
    assert 'data-metric="auc"' in body and "0.875" in body and f"/t/acme/runs/{fan_run.tracking_run}/" in body


def test_the_last_poll_brings_the_metrics_logged_after_the_page_loaded(client, members, team, promote, start_run):
    """The page was drawn before a step logged anything; the poll that sees the run end swaps the card in."""
    from cellar_server.tracking.services.runs import run_get, run_log_batch

    run = start_run(promote(fanout_notebook(), name="fan"))
    c = login(client, members["viewer"])
    assert "No metric logged yet" in c.get(f"{T}fan/runs/{run.number}/").content.decode()
    live = c.get(f"{T}fan/runs/{run.number}/live/").content.decode()
    assert 'id="run-metrics"' not in live  # polls of a live run do not redraw the card
    run_log_batch(
        run=run_get(team=team, run_id=run.tracking_run),
        metrics=[{"key": "accuracy", "value": 0.9, "timestamp": 1, "step": 0}],
    )
    PipelineRun.all_teams.filter(pk=run.pk).update(state="succeeded")
    last = c.get(f"{T}fan/runs/{run.number}/live/").content.decode()
    assert 'id="run-metrics" data-testid="run-metrics" hx-swap-oob="true"' in last
    assert 'data-metric="accuracy"' in last and "No metric logged yet" not in last


@pytest.mark.parametrize("step,index,queries", [("plus", 1, 10), ("total", -1, 10)], ids=["branch", "join"])
def test_the_task_page_has_a_pinned_query_count(
    client, members, fan_run, django_assert_num_queries, step, index, queries
):
    c = login(client, members["viewer"])
    task = task_of(fan_run, step, index)
    with django_assert_num_queries(queries):
        assert c.get(f"{T}fan/runs/1/tasks/{task.pk}/").status_code == 200


def test_a_running_tasks_page_tails_the_output_its_heartbeats_bring(
    client, members, promote, start_run, api_worker, linear_version
):
    """The agent's heartbeats carry the end of what a running task wrote (through the engine API);
    its page shows it as live until the result brings the whole log, which replaces it."""
    from dataclasses import replace

    run = start_run(linear_version)
    (assigned,) = api_worker.take(run)
    api_worker.claim([assigned])
    beat = replace(assigned.lease, logs={"stdout": "epoch 1 loss 0.9\nepoch 2 loss 0.5\n"})
    assert api_worker._call("heartbeats/", "tasks", [vars(beat)])["alive"] == [assigned.item.task]
    c = login(client, members["viewer"])
    load = task_of(run, "load")
    page = c.get(f"{T}{linear_version.pipeline.name}/runs/{run.number}/tasks/{load.pk}/").content.decode()
    assert 'data-testid="logs-live"' in page and "epoch 2 loss 0.5" in page

    api_worker.report([api_worker.succeed(assigned, x=21)])
    load = task_of(run, "load")
    assert load.live_logs == {}
    page = c.get(f"{T}{linear_version.pipeline.name}/runs/{run.number}/tasks/{load.pk}/").content.decode()
    assert 'data-testid="logs-live"' not in page and "epoch 2" not in page


def test_a_heartbeat_with_malformed_logs_is_refused(api_worker, start_run, linear_version):
    run = start_run(linear_version)
    (assigned,) = api_worker.take(run)
    entry = {**vars(assigned.lease), "logs": {"stdout": 5}}
    response = api_worker.api.post("/api/v1/engine/heartbeats/", {"worker": "w", "tasks": [entry]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_engine_request"
