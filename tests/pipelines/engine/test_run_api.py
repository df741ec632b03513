"""The runs REST API: every endpoint for each role, another team (404), narrow tokens, anonymous
calls; bad inputs answer JSON errors with stable codes and write nothing; `cellar promote --run
--wait` follows a run through this API (its client, with HTTP replaced by Django's test client)."""

from __future__ import annotations

import argparse
import json

import pytest

from cellar.client import CellarAPIError, Client
from cellar.pipelines import cli_promote
from cellar_server.pipelines.models import PipelineRun, Task
from cellar_server.tracking.models import Run
from tests.conftest import ROLES
from tests.pipelines.engine.conftest import linear_notebook

pytestmark = pytest.mark.django_db

BASE = "/api/v1/teams/acme/pipelines/linear/"


@pytest.fixture
def finished(linear_version, start_run, worker):
    """Run #1 succeeded; run #2 failed (its first task failed)."""
    first = worker.drain(start_run(linear_version))
    second = start_run(linear_version, use_cache=False)
    (load,) = worker.take(second)
    worker.claim([load])
    worker.report([worker.fail(load)])
    return first, PipelineRun.all_teams.get(pk=second.pk)


def code(response) -> str:
    return response.json()["error"]["code"]


READS = [
    ("list", BASE + "runs/"),
    ("detail", BASE + "runs/1/"),
    ("tasks", BASE + "runs/1/tasks/"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,path", READS, ids=[r[0] for r in READS])
def test_every_member_reads_runs(api_as, members, finished, role, name, path):
    assert api_as(members[role]).get(path).status_code == 200


@pytest.mark.parametrize("name,path", READS, ids=[r[0] for r in READS])
def test_another_team_sees_no_runs(api_as, outsider, finished, name, path):
    response = api_as(outsider).get(path)
    assert response.status_code == 404 and code(response) == "not_found"


def test_anonymous_calls_are_refused(api, finished):
    assert api.get(BASE + "runs/").status_code == 401
    assert api.post(BASE + "runs/", {}, format="json").status_code == 401


WRITES = [
    ("create", "runs/", {"version": "1"}, 201),
    ("cancel", "runs/3/cancel/", None, 200),
    ("resume", "runs/2/resume/", None, 201),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,path,body,ok", WRITES, ids=[w[0] for w in WRITES])
def test_editors_and_up_run_cancel_and_resume(
    api_as, members, finished, linear_version, start_run, role, name, path, body, ok
):
    start_run(linear_version, use_cache=False)  # run #3, in progress
    before = PipelineRun.all_teams.count()
    response = api_as(members[role]).post(BASE + path, body, format="json")
    if role == "viewer":
        assert response.status_code == 403 and code(response) == "missing_scope"
        assert PipelineRun.all_teams.count() == before
        assert not PipelineRun.all_teams.filter(cancel_requested=True).exists()
    else:
        assert response.status_code == ok, response.content


@pytest.mark.parametrize("name,path,body,ok", WRITES, ids=[w[0] for w in WRITES])
def test_another_team_cannot_write(api_as, outsider, finished, linear_version, start_run, name, path, body, ok):
    start_run(linear_version, use_cache=False)
    response = api_as(outsider).post(BASE + path, body, format="json")
    assert response.status_code == 404
    assert PipelineRun.all_teams.count() == 3 and not PipelineRun.all_teams.filter(cancel_requested=True).exists()


def test_a_read_only_token_reads_but_cannot_run(token_client, team, members, finished):
    client, _token = token_client(team, members["owner"], scopes=["pipelines:read"])
    assert client.get(BASE + "runs/").status_code == 200
    response = client.post(BASE + "runs/", {"version": "1"}, format="json")
    assert response.status_code == 403 and code(response) == "missing_scope"
    client, _token = token_client(team, members["editor"], scopes=["pipelines:read", "pipelines:run"])
    assert client.post(BASE + "runs/", {"version": "1"}, format="json").status_code == 201


def test_the_run_shapes(api_as, members, finished, linear_version):
    first, second = finished
    body = api_as(members["viewer"]).get(BASE + "runs/1/").json()
    assert body["id"] == body["number"] == 1 and body["state"] == "succeeded"
    assert body["version"] == {"id": linear_version.hash, "number": linear_version.number}
    assert body["progress"] == {"done": 3, "failed": 0, "total": 3}
    assert body["parameters"] == {"alpha": 2, "label": "run"} and body["trigger"] == "api"
    assert body["tracking_run"] == first.tracking_run and body["created_by"] == "editor-user"
    assert body["steps"] == [
        {"name": "load", "expand": None, "tasks": {"succeeded": 1}},
        {"name": "double", "expand": None, "tasks": {"succeeded": 1}},
        {"name": "report", "expand": None, "tasks": {"succeeded": 1}},
    ]
    failed = api_as(members["viewer"]).get(BASE + "runs/2/").json()
    assert failed["state"] == "failed" and failed["error"]["step"] == "load"
    assert failed["error"]["message"] == "boom" and failed["progress"] == {"done": 0, "failed": 1, "total": 3}
    listing = api_as(members["viewer"]).get(BASE + "runs/").json()
    assert [r["id"] for r in listing["results"]] == [2, 1] and listing["count"] == 2
    assert [r["id"] for r in api_as(members["viewer"]).get(BASE + "runs/?state=failed").json()["results"]] == [2]
    tasks = api_as(members["viewer"]).get(BASE + "runs/1/tasks/").json()
    assert [t["step"] for t in tasks["results"]] == ["load", "double", "report"]
    double = tasks["results"][1]
    assert double["inputs"]["x"] == tasks["results"][0]["outputs"]["x"] and double["index"] is None
    assert double["attempt"] == 1 and double["cached"] is False and double["worker"] == "worker-1"
    only = api_as(members["viewer"]).get(BASE + "runs/1/tasks/?step=double&state=succeeded").json()
    assert [t["step"] for t in only["results"]] == ["double"]


def test_starting_a_run_through_the_api(api_as, members, linear_version):
    response = api_as(members["editor"]).post(
        BASE + "runs/",
        {"version": linear_version.hash[:12], "parameters": {"alpha": 5}, "use_cache": False},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "queued" and body["parameters"] == {"alpha": 5, "label": "run"}
    assert body["use_cache"] is False and body["progress"] == {"done": 0, "failed": 0, "total": 1}
    assert body["steps"][0] == {"name": "load", "expand": None, "tasks": {"queued": 1}}


def test_the_production_version_runs_by_default(api_as, members, team, promote, linear_version):
    from cellar_server.pipelines.services import pipeline_production_move
    from cellar_server.teams.actors import Actor

    newer = promote(linear_notebook(extra="\nprint('v2')"), "linear")
    response = api_as(members["editor"]).post(BASE + "runs/", {}, format="json")
    assert response.status_code == 400 and code(response) == "no_production_version"
    pipeline_production_move(team=team, pipeline=newer.pipeline, version=linear_version, actor=Actor(members["admin"]))
    response = api_as(members["editor"]).post(BASE + "runs/", {}, format="json")
    assert response.status_code == 201 and response.json()["version"]["number"] == linear_version.number


BAD_CREATES = [
    ("unknown-version", {"version": "99"}, 400, "unknown_version"),
    ("bad-version-ref", {"version": "not a version"}, 400, "invalid_version_ref"),
    ("parameters-not-object", {"version": "1", "parameters": [1]}, 400, "invalid"),
    ("unknown-parameter", {"version": "1", "parameters": {"beta": 1}}, 400, "invalid_parameters"),
    ("mistyped-parameter", {"version": "1", "parameters": {"alpha": "x"}}, 400, "invalid_parameters"),
    ("use-cache-not-bool", {"version": "1", "use_cache": "maybe"}, 400, "invalid"),
    ("bad-trigger", {"version": "1", "trigger": "schedule"}, 400, "invalid"),
]


@pytest.mark.parametrize("name,body,status,error", BAD_CREATES, ids=[b[0] for b in BAD_CREATES])
def test_bad_run_requests_write_nothing(api_as, members, linear_version, name, body, status, error):
    response = api_as(members["editor"]).post(BASE + "runs/", body, format="json")
    assert response.status_code == status and code(response) == error, response.content
    assert not PipelineRun.all_teams.exists() and not Task.all_teams.exists() and not Run.all_teams.exists()


def test_unknown_parameter_names_the_known_ones(api_as, members, linear_version):
    response = api_as(members["editor"]).post(
        BASE + "runs/", {"parameters": {"beta": 1}, "version": "1"}, format="json"
    )
    assert "known parameters: alpha, label" in response.json()["error"]["message"]


def test_missing_things_and_conflicts(api_as, members, finished):
    client = api_as(members["editor"])
    assert client.get(BASE + "runs/9/").status_code == 404
    assert client.get("/api/v1/teams/acme/pipelines/nope/runs/").status_code == 404
    assert client.post("/api/v1/teams/acme/pipelines/nope/runs/", {}, format="json").status_code == 404
    response = client.post(BASE + "runs/1/cancel/")
    assert response.status_code == 409 and code(response) == "run_finished"
    response = client.post(BASE + "runs/1/resume/")
    assert response.status_code == 409 and code(response) == "run_not_resumable"
    response = client.get(BASE + "runs/?state=sleeping")
    assert response.status_code == 400 and code(response) == "invalid_state"
    response = client.get(BASE + "runs/1/tasks/?kind=other")
    assert response.status_code == 400 and code(response) == "invalid_kind"


def test_resume_through_the_api(api_as, members, finished):
    response = api_as(members["editor"]).post(BASE + "runs/2/resume/")
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == 3 and body["trigger"] == "resume" and body["resumed_from"] == 2


def test_the_run_list_has_a_fixed_query_count(
    api_as, members, linear_version, start_run, django_assert_max_num_queries
):
    client = api_as(members["viewer"])
    start_run(linear_version)
    client.get(BASE + "runs/")  # warm the session and token caches
    with django_assert_max_num_queries(12) as few:
        client.get(BASE + "runs/")
    for _ in range(5):
        start_run(linear_version)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(client.get(BASE + "runs/").json()["results"]) == 6


# --- `cellar promote --run --wait` ---------------------------------------------------------------------


class InProcessClient(Client):
    """The SDK's client with HTTP replaced by Django's test client; each poll lets a worker work."""

    def __init__(self, api, on_get=None):
        super().__init__("http://testserver", "unused")
        self.api = api
        self.on_get = on_get

    def request(self, method, path, **kwargs):
        if method == "GET" and self.on_get is not None:
            self.on_get()
        body = json.dumps(kwargs.get("json")) if kwargs.get("json") is not None else None
        response = self.api.generic(method, f"/api/v1/{path.lstrip('/')}", body, content_type="application/json")
        data = response.json()
        if response.status_code >= 400:
            error = data.get("error", {})
            raise CellarAPIError(response.status_code, error.get("code"), error.get("message"), error.get("detail"))
        return data


def _args(**kw):
    return argparse.Namespace(wait=True, poll_interval=0.0, **kw)


def test_promote_run_wait_follows_a_run_to_success(api_as, members, linear_version, worker, capsys):
    def work():
        run = PipelineRun.all_teams.first()
        worker.drain(run, rounds=1)

    client = InProcessClient(api_as(members["editor"]), on_get=work)
    version = {"id": linear_version.hash, "number": linear_version.number}
    code = cli_promote._start_run(client, "teams/acme/pipelines/linear", version, {"alpha": 3}, _args())
    assert code == 0
    err = capsys.readouterr().err
    assert "Started run 1 of version 1." in err and "Run 1 succeeded." in err
    assert "queued · 0 done, 0 failed, 1 total" in err
    assert PipelineRun.all_teams.get().parameters["alpha"] == 3


def test_promote_run_wait_exits_1_when_the_run_fails(api_as, members, promote, worker, capsys):
    from tests.pipelines.engine.conftest import failing_notebook

    version = promote(failing_notebook(), "fails")
    client = InProcessClient(api_as(members["editor"]), on_get=lambda: worker.drain(PipelineRun.all_teams.first()))
    code = cli_promote._start_run(client, "teams/acme/pipelines/fails", {"id": version.hash, "number": 1}, {}, _args())
    assert code == 1 and "Run 1 failed." in capsys.readouterr().err


def test_promote_run_reports_refused_parameters(api_as, members, linear_version, capsys):
    client = InProcessClient(api_as(members["viewer"]))
    code = cli_promote._start_run(
        client, "teams/acme/pipelines/linear", {"id": linear_version.hash, "number": 1}, {}, _args()
    )
    assert code == 1 and "missing_scope" in capsys.readouterr().err
