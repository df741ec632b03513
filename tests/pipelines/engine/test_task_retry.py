"""Retry a failed task inside its run (engine/retry.py) and the task API: detail with attempts
and lineage, the blobs a task references, retry by role and across teams; run operations audited."""

from __future__ import annotations

import pytest

from cellar.pipelines.serializers import deserialize
from cellar_server.pipelines.engine.retry import task_retry
from cellar_server.pipelines.models import PipelineRun, Task
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import AuditEvent
from cellar_server.tracking.models import Run
from tests.conftest import ROLES
from tests.pipelines.engine.conftest import (
    build_notebook,
    cell,
    failing_notebook,
    fanout_notebook,
    fresh,
    states,
    task_of,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/teams/acme/pipelines/"


@pytest.fixture
def failed_run(promote, start_run, worker):
    """flaky: load -> boom (raises ValueError) -> after; the run failed at boom."""
    run = worker.drain(start_run(promote(failing_notebook(), "flaky")))
    assert run.state == "failed"
    return run


def test_retrying_the_failed_task_reopens_the_run_and_finishes_it(failed_run, worker, members):
    run = failed_run
    assert states(run) == {"load": "succeeded", "boom": "failed", "after": "upstream_failed"}
    boom = task_of(run, "boom")
    run = task_retry(run=run, task_id=boom.pk, actor=Actor(user=members["editor"]))
    assert run.state == "running" and run.tasks_failed == 0 and run.error is None and run.ended_at is None
    assert states(run) == {"load": "succeeded", "boom": "queued"}  # the placeholder is gone
    assert Run.all_teams.get(run_uuid=run.tracking_run).status == "RUNNING"
    (again,) = worker.take(run)
    assert again.step == "boom" and again.item.attempt == 2
    worker.claim([again])
    worker.report([worker.succeed(again, y=2, z=3)])
    run = worker.drain(run)
    assert run.state == "succeeded" and run.tasks_done == 3 and run.tasks_total == 3
    assert (
        task_of(run, "after").state == "succeeded"
        and task_of(run, "after").inputs["z"] == task_of(run, "boom").outputs["z"]
    )
    boom = task_of(run, "boom")
    assert list(boom.attempts.order_by("number").values_list("state", flat=True)) == ["failed", "succeeded"]
    event = AuditEvent.all_teams.get(verb="pipeline_run.retry")
    assert (
        event.details["step"] == "boom" and event.actor_name == "editor-user" and "bad input" in event.details["error"]
    )


def test_a_retried_task_that_fails_again_fails_the_run_again(failed_run, worker, members):
    run = task_retry(run=failed_run, task_id=task_of(failed_run, "boom").pk, actor=Actor(user=members["editor"]))
    run = worker.drain(run)
    assert run.state == "failed" and run.tasks_failed == 1 and run.error["step"] == "boom"
    assert states(run)["after"] == "upstream_failed"


def test_a_foreach_branch_retried_alone_requeues_the_cancelled_siblings(promote, start_run, worker, members):
    run = start_run(promote(fanout_notebook(), "fan"))
    for _ in range(2):  # make, then the expansion
        assigned = worker.take(run)
        worker.claim(assigned)
        worker.report([worker.execute(a) for a in assigned])
    branches = worker.take(run)
    assert sorted(a.item.index for a in branches if a.step == "square") == [0, 1, 2]
    first = next(a for a in branches if a.item.index == 0)
    worker.claim([first])
    worker.report([worker.fail(first, "element 0 broke")])
    run = worker.drain(run)
    assert run.state == "failed"
    run = task_retry(run=run, task_id=task_of(run, "square", 0).pk, actor=Actor(user=members["editor"]))
    assert run.state == "running"
    run = worker.drain(run)
    assert run.state == "succeeded", states(run)
    assert worker.load(task_of(run, "total").outputs["total"]) == 3 * 10 + 0 + 1 + 4


@pytest.mark.parametrize(
    "setup,code",
    [("running", "run_not_finished"), ("succeeded_task", "task_not_failed"), ("cancelled", "run_cancelled")],
)
def test_what_cannot_be_retried(promote, start_run, worker, members, setup, code):
    from cellar_server.core.exceptions import ServiceError
    from cellar_server.pipelines.engine.runs import run_cancel

    editor = Actor(user=members["editor"])
    run = start_run(promote(failing_notebook(), "flaky"))
    if setup == "running":
        task = task_of(run, "load")
        Task.all_teams.filter(pk=task.pk).update(state="failed")
    elif setup == "succeeded_task":
        run = worker.drain(run)
        task = task_of(run, "load")
    else:
        run_cancel(run=run, actor=editor)
        run = fresh(run)
        task = task_of(run, "load")
        Task.all_teams.filter(pk=task.pk).update(state="failed")
        PipelineRun.all_teams.filter(pk=run.pk).update(state="failed")
    with pytest.raises(ServiceError) as caught:
        task_retry(run=fresh(run), task_id=task.pk, actor=editor)
    assert caught.value.code == code and caught.value.status_code == 409


def test_run_create_cancel_and_resume_are_audited(failed_run, api_as, members):
    assert AuditEvent.all_teams.filter(verb="pipeline_run.create", target_repr="flaky #1").exists()
    response = api_as(members["editor"]).post(BASE + "flaky/runs/1/resume/", format="json")
    assert response.status_code == 201
    resumed = AuditEvent.all_teams.get(verb="pipeline_run.resume")
    assert resumed.target_repr == "flaky #2" and resumed.details["resumed_from"] == 1
    assert api_as(members["editor"]).post(BASE + "flaky/runs/2/cancel/", format="json").status_code == 200
    cancelled = AuditEvent.all_teams.get(verb="pipeline_run.cancel")
    assert cancelled.target_repr == "flaky #2" and cancelled.actor_name == "editor-user"


# --- the task API -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_retry_through_the_api_needs_the_run_scope(failed_run, api_as, members, role):
    boom = task_of(failed_run, "boom")
    response = api_as(members[role]).post(BASE + f"flaky/runs/1/tasks/{boom.pk}/retry/", format="json")
    if role == "viewer":
        assert response.status_code == 403 and response.json()["error"]["code"] == "missing_scope"
        assert fresh(failed_run).state == "failed"
    else:
        assert response.status_code == 200, response.content
        assert response.json()["state"] == "running" and task_of(failed_run, "boom").state == "queued"


def test_another_team_neither_reads_nor_retries_a_task(failed_run, api_as, outsider):
    boom = task_of(failed_run, "boom")
    client = api_as(outsider)
    assert client.get(BASE + f"flaky/runs/1/tasks/{boom.pk}/").status_code == 404
    assert client.post(BASE + f"flaky/runs/1/tasks/{boom.pk}/retry/", format="json").status_code == 404
    assert fresh(failed_run).state == "failed"


def test_retrying_a_task_that_is_not_failed_is_a_conflict(failed_run, api_as, members):
    load = task_of(failed_run, "load")
    response = api_as(members["editor"]).post(BASE + f"flaky/runs/1/tasks/{load.pk}/retry/", format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "task_not_failed"


def test_task_detail_has_attempts_lineage_and_code(promote, start_run, worker, api_as, members, settings, store):
    settings.ARTIFACT_STORE_URL = f"file://{store.root}"
    run = worker.drain(start_run(promote(fanout_notebook(), "fan")))
    assert run.state == "succeeded"
    client = api_as(members["viewer"])
    plus1 = task_of(run, "plus", 1)
    body = client.get(BASE + f"fan/runs/1/tasks/{plus1.pk}/").json()
    assert body["step"] == "plus" and body["index"] == 1 and body["parameters"] == {"n": 3, "base": 10}
    assert [a["state"] for a in body["attempts"]] == ["succeeded"] and body["attempts"][0]["worker"] == "worker-1"
    assert "sq + base" in body["source"]["code"]
    (sq,) = body["lineage"]["inputs"]
    assert sq["name"] == "sq" and sq["step"] == "square" and sq["index"] == 1
    assert sq["task"] == task_of(run, "square", 1).pk and sq["size"] > 0
    (plus,) = body["lineage"]["outputs"]
    assert plus["readers"] == [{"step": "total", "index": -1, "all": False, "task": task_of(run, "total").pk}]
    # The join's input is every element's output: it links to the producing step.
    total = client.get(BASE + f"fan/runs/1/tasks/{task_of(run, 'total').pk}/").json()
    joined = {i["name"]: i for i in total["lineage"]["inputs"]}
    assert joined["plus"]["all"] is True and joined["plus"]["count"] == 3 and joined["plus"]["task"] is None
    # A referenced blob comes back with its serializer; anything else is 404.
    ref = body["outputs"]["plus"]
    blob = client.get(BASE + f"fan/runs/1/tasks/{plus1.pk}/blobs/{ref['sha256']}/")
    assert blob.status_code == 200 and blob["X-Cellar-Serializer"] == ref["serializer"]
    assert ref.get("inline") is not None  # a small value travels inside its reference
    assert deserialize(ref["serializer"], blob.content) == 1 + 10
    other = task_of(run, "plus", 2).outputs["plus"]["sha256"]
    assert client.get(BASE + f"fan/runs/1/tasks/{plus1.pk}/blobs/{other}/").status_code == 404


def test_tasks_filter_by_index(promote, start_run, worker, api_as, members):
    run = worker.drain(start_run(promote(fanout_notebook(), "fan")))
    body = api_as(members["viewer"]).get(BASE + "fan/runs/1/tasks/?step=square&index=2").json()
    assert [(t["step"], t["index"]) for t in body["results"]] == [("square", 2)]
    bad = api_as(members["viewer"]).get(BASE + "fan/runs/1/tasks/?index=two")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_index"
    assert run.state == "succeeded"


def test_a_stored_blob_streams_from_the_store(promote, start_run, worker, api_as, members, settings, store):
    settings.ARTIFACT_STORE_URL = f"file://{store.root}"
    notebook = build_notebook(cell("big = 'x' * 1000", "step:make"), cell("n = len(big)", "step:count"))
    run = worker.drain(start_run(promote(notebook, "big")))
    make = task_of(run, "make")
    ref = make.outputs["big"]
    assert ref.get("inline") is None
    blob = api_as(members["viewer"]).get(BASE + f"big/runs/1/tasks/{make.pk}/blobs/{ref['sha256']}/")
    assert blob.status_code == 200 and blob.streaming
    assert deserialize(ref["serializer"], b"".join(blob.streaming_content)) == "x" * 1000
