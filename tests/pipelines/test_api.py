"""The pipelines REST API: every endpoint for each role, another team, narrow tokens; bad inputs
answer JSON errors with stable codes and write nothing; versions, diffs and the alias."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from cellar_server.pipelines import services
from cellar_server.pipelines.models import Pipeline, PipelineVersion, ProductionMove
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import AuditEvent
from cellar_server.teams.roles import scopes_for
from tests.conftest import ROLES
from tests.pipelines.conftest import churn_notebook, code_cell, notebook

pytestmark = pytest.mark.django_db

BASE = "/api/v1/teams/acme/pipelines/"


@pytest.fixture
def promoted(team, members):
    """Pipeline churn: v1 (production) and v2."""
    actor = Actor(user=members["admin"])
    first = services.pipeline_version_create(
        team=team,
        pipeline_name="churn",
        notebook=churn_notebook(),
        actor=actor,
        scopes=scopes_for("admin"),
        production=True,
    )
    second = services.pipeline_version_create(
        team=team,
        pipeline_name="churn",
        notebook=churn_notebook(threshold=0.8, train_extra="\nscore = round(score, 2)"),
        actor=actor,
        scopes=scopes_for("admin"),
    )
    return first.version, second.version


def error_code(response) -> str:
    return response.json()["error"]["code"]


# --- roles ---------------------------------------------------------------------------------------------

READS = [
    ("list", BASE),
    ("detail", BASE + "churn/"),
    ("versions", BASE + "churn/versions/"),
    ("version", BASE + "churn/versions/2/"),
    ("diff", BASE + "churn/versions/1/diff/2/"),
    ("production", BASE + "churn/production/"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,path", READS, ids=[r[0] for r in READS])
def test_every_member_reads(api_as, members, promoted, role, name, path):
    assert api_as(members[role]).get(path).status_code == 200


@pytest.mark.parametrize("name,path", READS, ids=[r[0] for r in READS])
def test_another_team_sees_nothing(api_as, outsider, promoted, name, path):
    response = api_as(outsider).get(path)
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_anonymous_calls_are_refused(api, promoted):
    assert api.get(BASE).status_code == 401
    assert api.post(BASE + "churn/versions/", {"notebook": churn_notebook()}, format="json").status_code == 401


WRITE_EXPECTED = {"viewer": 403, "editor": 201, "admin": 201, "owner": 201}
PROMOTE_EXPECTED = {"viewer": 403, "editor": 403, "admin": 200, "owner": 200}


@pytest.mark.parametrize("role", ROLES)
def test_creating_versions_needs_write(api_as, members, team, role):
    response = api_as(members[role]).post(BASE + "churn/versions/", {"notebook": churn_notebook()}, format="json")
    assert response.status_code == WRITE_EXPECTED[role], response.json()
    if response.status_code == 403:
        assert error_code(response) == "missing_scope" and "pipelines:write" in response.json()["error"]["message"]
        assert not Pipeline.all_teams.exists()


@pytest.mark.parametrize("role", ROLES)
def test_compile_dry_run_needs_write(api_as, members, team, role):
    response = api_as(members[role]).post(BASE + "compile/", {"notebook": churn_notebook()}, format="json")
    assert response.status_code == (403 if role == "viewer" else 200)
    assert not Pipeline.all_teams.exists()


@pytest.mark.parametrize("role", ROLES)
def test_production_on_create_needs_promote(api_as, members, team, role):
    body = {"notebook": churn_notebook(), "production": True}
    response = api_as(members[role]).post(BASE + "churn/versions/", body, format="json")
    expected = {"viewer": 403, "editor": 403, "admin": 201, "owner": 201}[role]
    assert response.status_code == expected
    if role == "editor":
        assert error_code(response) == "missing_scope" and "pipelines:promote" in response.json()["error"]["message"]
        assert not PipelineVersion.all_teams.exists()  # refused before anything was written
    if expected == 201:
        assert response.json()["is_production"] is True


@pytest.mark.parametrize("role", ROLES)
def test_moving_the_alias_needs_promote(api_as, members, promoted, role):
    client = api_as(members[role])
    response = client.post(BASE + "churn/production/", {"version": "2"}, format="json")
    assert response.status_code == PROMOTE_EXPECTED[role]
    rollback = client.post(BASE + "churn/production/rollback/")
    assert rollback.status_code == PROMOTE_EXPECTED[role]
    if role in ("viewer", "editor"):
        assert error_code(response) == error_code(rollback) == "missing_scope"
        assert ProductionMove.all_teams.count() == 1


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("post", BASE + "churn/versions/", {"notebook": churn_notebook()}),
        ("post", BASE + "churn/production/", {"version": "1"}),
        ("post", BASE + "churn/production/rollback/", None),
        ("post", BASE + "compile/", {"notebook": churn_notebook()}),
    ],
    ids=["create", "promote", "rollback", "compile"],
)
def test_another_teams_writes_answer_404(api_as, outsider, promoted, method, path, body):
    response = getattr(api_as(outsider), method)(path, body, format="json")
    assert response.status_code == 404
    assert PipelineVersion.all_teams.count() == 2 and ProductionMove.all_teams.count() == 1


def test_a_read_only_token_of_an_admin_cannot_write(token_client, team, members, promoted):
    client, _ = token_client(team, members["admin"], scopes=["pipelines:read"])
    assert client.get(BASE).status_code == 200
    response = client.post(BASE + "churn/versions/", {"notebook": churn_notebook(threshold=0.1)}, format="json")
    assert response.status_code == 403 and "token" in response.json()["error"]["message"]
    assert client.post(BASE + "churn/production/", {"version": "2"}, format="json").status_code == 403


def test_a_write_token_of_an_admin_cannot_move_the_alias(token_client, team, members, promoted):
    client, _ = token_client(team, members["admin"], scopes=["pipelines:read", "pipelines:write"])
    response = client.post(BASE + "churn/versions/", {"notebook": churn_notebook(), "production": True}, format="json")
    assert response.status_code == 403 and error_code(response) == "missing_scope"
    ok = client.post(BASE + "churn/versions/", {"notebook": churn_notebook(threshold=0.2)}, format="json")
    assert ok.status_code == 201
    assert client.post(BASE + "churn/production/rollback/").status_code == 403


def test_a_token_of_another_team_is_refused(token_client, other_team, outsider, promoted):
    client, _ = token_client(other_team, outsider)
    assert client.get(BASE).status_code == 404


# --- versions ------------------------------------------------------------------------------------------


def test_create_returns_the_version_steps_dag_and_warnings(api_as, members, team):
    client = api_as(members["editor"])
    response = client.post(BASE + "churn/versions/", {"notebook": churn_notebook()}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["created"] is True and body["number"] == 1 and len(body["id"]) == 64
    assert [s["name"] for s in body["steps"]] == ["load", "split", "train", "pick", "report"]
    train = next(s for s in body["steps"] if s["name"] == "train")
    assert train["foreach"] == {"iterable": "fold_ids", "item": "fold"}
    assert train["source"] == {"cells": [5], "first_lines": [1]}
    assert {"source": "train", "target": "pick", "variables": ["score"]} in body["edges"]
    assert body["parameters"][0]["name"] == "threshold"
    assert body["environment"]["python"] and isinstance(body["environment"]["packages"], dict)
    assert isinstance(body["request_warnings"], list)
    again = client.post(BASE + "churn/versions/", {"notebook": churn_notebook()}, format="json")
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["id"] == body["id"]
    event = AuditEvent.all_teams.get(verb="pipeline.version_create")
    assert event.target_id == body["id"] and event.actor_name == "editor-user"


def test_create_with_selected_cells(api_as, members, team):
    body = {"notebook": churn_notebook(), "cells": [3, 4]}
    response = api_as(members["editor"]).post(BASE + "churn/versions/", body, format="json")
    assert response.status_code == 201, response.json()
    assert [s["name"] for s in response.json()["steps"]] == ["load", "split"]


def test_create_accepts_a_multipart_upload(api_as, members, team):
    upload = io.BytesIO(json.dumps(churn_notebook()).encode())
    upload.name = "churn.ipynb"
    response = api_as(members["editor"]).post(
        BASE + "churn/versions/", {"notebook": upload, "cells": "3-4"}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["notebook"] == "churn.ipynb" and body["step_count"] == 2


def test_a_sent_environment_is_the_lock(api_as, members, team):
    env = {"python": "3.11", "lock": {"numpy": "1.0.0", "pandas": "2.0.0"}, "modules": {"numpy": "numpy"}}
    nb = notebook(code_cell("import numpy\nx = numpy.ones(2)", "step:a"))
    response = api_as(members["editor"]).post(BASE + "p/versions/", {"notebook": nb, "environment": env}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["environment"] == {"python": "3.11", "packages": env["lock"], "modules": env["modules"]}
    warnings = [w["message"] for w in body["request_warnings"]]
    assert any("'numpy' is 1.0.0 where the pipeline was promoted" in w for w in warnings), warnings
    assert body["warnings"] == body["request_warnings"]


BAD_INPUTS = [
    ("not json", "text", "{nope", "malformed_json"),
    ("no notebook", "json", {"cells": [1]}, "invalid"),
    ("a list", "json", {"notebook": [1, 2]}, "invalid"),
    ("not a notebook", "json", {"notebook": {"hello": "world"}}, "not_a_notebook"),
    ("json text not an object", "json", {"notebook": "[1]"}, "not_a_notebook"),
    ("bad cells", "json", {"notebook": churn_notebook(), "cells": ["x"]}, "invalid"),
    ("bad environment", "json", {"notebook": churn_notebook(), "environment": {"python": "three"}}, "invalid"),
    ("cell out of range", "json", {"notebook": churn_notebook(), "cells": [99]}, "compile_error"),
]


@pytest.mark.parametrize("name,kind,body,code", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_are_json_errors_and_write_nothing(api_as, members, team, name, kind, body, code):
    client = api_as(members["editor"])
    if kind == "text":
        response = client.post(BASE + "churn/versions/", body, content_type="application/json")
    else:
        response = client.post(BASE + "churn/versions/", body, format="json")
    assert response.status_code == 400, response.content
    assert error_code(response) == code, response.json()
    assert not Pipeline.all_teams.exists() and not AuditEvent.all_teams.exists()


def test_an_uploaded_file_that_is_not_a_notebook(api_as, members, team):
    upload = io.BytesIO(b"\x89PNG not json")
    upload.name = "picture.png"
    response = api_as(members["editor"]).post(BASE + "churn/versions/", {"notebook": upload}, format="multipart")
    assert response.status_code == 400 and error_code(response) == "not_a_notebook"
    bad_cells = io.BytesIO(json.dumps(churn_notebook()).encode())
    bad_cells.name = "a.ipynb"
    response = api_as(members["editor"]).post(
        BASE + "churn/versions/", {"notebook": bad_cells, "cells": "3-x"}, format="multipart"
    )
    assert response.status_code == 400 and error_code(response) == "invalid_cells"


def test_compile_errors_name_the_cell(api_as, members, team):
    nb = notebook(
        code_cell("x = 1", "step:a"),
        code_cell("y = x +", "step:b"),
        code_cell("z = nowhere * 2", "step:c"),
    )
    response = api_as(members["editor"]).post(BASE + "churn/versions/", {"notebook": nb}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "compile_error" and "cell 1" in error["message"]
    problems = error["detail"]["problems"]
    by_code = {p["code"]: p for p in problems}
    assert by_code["syntax_error"]["cell"] == 1 and by_code["syntax_error"]["line"] == 1
    assert by_code["undefined_name"]["cell"] == 2 and "nowhere" in by_code["undefined_name"]["message"]
    assert not Pipeline.all_teams.exists()


def test_a_missing_package_is_named(api_as, members, team):
    nb = notebook(code_cell("import surely_not_installed_pkg", "imports"), code_cell("x = 1", "step:a"))
    response = api_as(members["editor"]).post(BASE + "churn/versions/", {"notebook": nb}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "missing_package" and "surely_not_installed_pkg" in error["message"]
    assert error["detail"]["problems"][0]["step"] == "a"


def test_an_unknown_pool_is_named(api_as, members, team):
    nb = notebook(code_cell("x = 1", "step:a", "pool:huge"))
    response = api_as(members["editor"]).post(BASE + "churn/versions/", {"notebook": nb}, format="json")
    assert response.status_code == 400
    [problem] = response.json()["error"]["detail"]["problems"]
    assert problem["code"] == "unknown_pool" and "huge" in problem["message"] and problem["cell"] == 0


def test_an_invalid_pipeline_name(api_as, members, team):
    response = api_as(members["editor"]).post(
        BASE + "Bad_Name/versions/", {"notebook": churn_notebook()}, format="json"
    )
    assert response.status_code == 400 and error_code(response) == "invalid_pipeline_name"


def test_versions_list_and_detail(api_as, members, promoted):
    v1, v2 = promoted
    client = api_as(members["viewer"])
    listing = client.get(BASE + "churn/versions/").json()
    assert listing["count"] == 2 and [v["number"] for v in listing["results"]] == [2, 1]
    assert listing["results"][1]["is_production"] is True and "steps" not in listing["results"][0]
    for ref in ("2", "v2", v2.hash, v2.hash[:8], v2.hash[:20]):
        body = client.get(BASE + f"churn/versions/{ref}/").json()
        assert body["id"] == v2.hash, ref
    assert client.get(BASE + "churn/versions/9/").status_code == 404
    assert client.get(BASE + "churn/versions/" + "0" * 12 + "/").status_code == 404
    short = client.get(BASE + "churn/versions/abc/")
    assert short.status_code == 400 and error_code(short) == "invalid_version_ref"
    assert client.get(BASE + "nope/versions/").status_code == 404


def test_an_ambiguous_prefix(api_as, members, promoted):
    v1, v2 = promoted
    PipelineVersion.all_teams.filter(pk=v2.pk).update(hash=v1.hash[:10] + "f" * 54)
    response = api_as(members["viewer"]).get(BASE + f"churn/versions/{v1.hash[:8]}/")
    assert response.status_code == 400 and error_code(response) == "ambiguous_version_ref"


def test_pipeline_list_and_detail(api_as, members, promoted):
    client = api_as(members["viewer"])
    listing = client.get(BASE).json()
    assert listing["count"] == 1
    [row] = listing["results"]
    assert row["name"] == "churn" and row["version_count"] == 2 and row["latest_version"] == 2
    assert row["production"] == {"id": promoted[0].hash, "number": 1}
    assert client.get(BASE + "churn/").json()["version_count"] == 2


def test_diff_shows_code_parameters_and_environment(api_as, members, team, promoted):
    client = api_as(members["viewer"])
    body = client.get(BASE + "churn/versions/1/diff/2/").json()
    assert body["from"]["number"] == 1 and body["to"]["number"] == 2 and body["identical"] is False
    train = next(s for s in body["steps"] if s["name"] == "train")
    assert train["status"] == "changed" and "+score = round(score, 2)" in train["code_diff"]
    assert {s["name"]: s["status"] for s in body["steps"]}["load"] == "unchanged"
    assert body["parameters"] == [
        {
            "name": "threshold",
            "status": "changed",
            "from": {"default": 0.5, "type": "float"},
            "to": {"default": 0.8, "type": "float"},
        }
    ]
    assert body["environment"]["changed"] is False
    same = client.get(BASE + "churn/versions/2/diff/2/").json()
    assert same["identical"] is True and all(s["status"] == "unchanged" for s in same["steps"])


def test_diff_of_added_removed_steps_and_environment(api_as, members, team):
    client = api_as(members["editor"])
    one = notebook(code_cell("a = 1", "step:first"), code_cell("b = a + 1", "step:second"))
    two = notebook(code_cell("a = 1", "step:first", "gpu:0", "retry:2"), code_cell("c = a * 3", "step:third"))
    env1 = {"python": "3.11", "lock": {"numpy": "1.0", "old-lib": "0.1"}, "modules": {}}
    env2 = {"python": "3.12", "lock": {"numpy": "2.0", "new-lib": "0.2"}, "modules": {}}
    client.post(BASE + "p/versions/", {"notebook": one, "environment": env1}, format="json")
    client.post(BASE + "p/versions/", {"notebook": two, "environment": env2}, format="json")
    body = client.get(BASE + "p/versions/1/diff/2/").json()
    statuses = {s["name"]: s["status"] for s in body["steps"]}
    assert statuses == {"first": "changed", "second": "removed", "third": "added"}
    first = next(s for s in body["steps"] if s["name"] == "first")
    assert first["changes"]["retry"] == {"from": 0, "to": 2} and "tags" in first["changes"]
    assert "+c = a * 3" in next(s for s in body["steps"] if s["name"] == "third")["code_diff"]
    env = body["environment"]
    assert env["python"] == {"from": "3.11", "to": "3.12"}
    assert env["packages"] == {
        "added": [{"name": "new-lib", "version": "0.2"}],
        "removed": [{"name": "old-lib", "version": "0.1"}],
        "changed": [{"name": "numpy", "from": "1.0", "to": "2.0"}],
    }
    assert body["summary"] == {"added": 1, "removed": 1, "changed": 1}


# --- the production alias ------------------------------------------------------------------------------


def test_production_promote_history_and_rollback(api_as, members, promoted):
    v1, v2 = promoted
    client = api_as(members["admin"])
    state = client.get(BASE + "churn/production/").json()
    assert state["current"]["id"] == v1.hash and state["count"] == 1
    assert state["results"][0]["kind"] == "promote" and state["results"][0]["from_version"] is None
    moved = client.post(BASE + "churn/production/", {"version": v2.hash[:10]}, format="json").json()
    assert moved["moved"] is True and moved["current"]["number"] == 2
    assert moved["move"]["from_version"] == {"id": v1.hash, "number": 1}
    again = client.post(BASE + "churn/production/", {"version": "2"}, format="json").json()
    assert again["moved"] is False and again["move"] is None
    back = client.post(BASE + "churn/production/rollback/").json()
    assert back["current"]["number"] == 1 and back["move"]["kind"] == "rollback"
    nothing = client.post(BASE + "churn/production/rollback/")
    assert nothing.status_code == 409 and error_code(nothing) == "nothing_to_roll_back"
    history = client.get(BASE + "churn/production/").json()
    assert [m["kind"] for m in history["results"]] == ["rollback", "promote", "promote"]
    verbs = list(AuditEvent.all_teams.filter(verb__startswith="pipeline.production").values_list("verb", flat=True))
    assert sorted(verbs) == [
        "pipeline.production_promote",
        "pipeline.production_promote",
        "pipeline.production_rollback",
    ]


def test_production_move_bad_inputs(api_as, members, promoted):
    client = api_as(members["admin"])
    assert error_code(client.post(BASE + "churn/production/", {}, format="json")) == "invalid"
    assert client.post(BASE + "churn/production/", {"version": "77"}, format="json").status_code == 404
    assert error_code(client.post(BASE + "churn/production/", {"version": "zz"}, format="json")) == (
        "invalid_version_ref"
    )
    assert client.post(BASE + "nope/production/", {"version": "1"}, format="json").status_code == 404
    assert ProductionMove.all_teams.count() == 1


# --- compile (dry run) ------------------------------------------------------------------------------------


def test_compile_reports_steps_or_problems_without_writing(api_as, members, team):
    client = api_as(members["editor"])
    ok = client.post(BASE + "compile/", {"notebook": churn_notebook()}, format="json").json()
    assert ok["ok"] is True and len(ok["id"]) == 64 and len(ok["steps"]) == 5 and ok["problems"] == []
    bad = client.post(BASE + "compile/", {"notebook": notebook(code_cell("print(q)", "step:a"))}, format="json")
    assert bad.status_code == 200
    body = bad.json()
    assert body["ok"] is False and body["id"] is None and body["problems"][0]["code"] == "undefined_name"
    not_nb = client.post(BASE + "compile/", {"notebook": {"x": 1}}, format="json")
    assert not_nb.status_code == 400 and error_code(not_nb) == "not_a_notebook"
    assert not Pipeline.all_teams.exists()
    # The dry run's id is the id a promote gives the same content.
    created = client.post(BASE + "churn/versions/", {"notebook": churn_notebook()}, format="json").json()
    assert created["id"] == ok["id"]


# --- pagination, queries, schema ---------------------------------------------------------------------------


def test_lists_are_paginated(api_as, members, team):
    actor = Actor(user=members["admin"])
    for t in range(3):
        services.pipeline_version_create(
            team=team,
            pipeline_name="churn",
            notebook=churn_notebook(threshold=t),
            actor=actor,
            scopes=scopes_for("admin"),
        )
    page = api_as(members["viewer"]).get(BASE + "churn/versions/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]


@pytest.mark.parametrize(
    "path,queries",
    [(BASE, 6), (BASE + "churn/", 5), (BASE + "churn/versions/", 7), (BASE + "churn/versions/2/", 6)],
)
def test_query_counts_are_pinned(api_as, members, promoted, django_assert_num_queries, path, queries):
    client = api_as(members["viewer"])
    client.get(path)  # warm the session
    with django_assert_num_queries(queries):
        assert client.get(path).status_code == 200


def test_more_pipelines_do_not_add_queries(api_as, members, team, promoted, django_assert_num_queries):
    actor = Actor(user=members["admin"])
    for name in ("a", "b", "c"):
        services.pipeline_version_create(
            team=team,
            pipeline_name=name,
            notebook=churn_notebook(),
            actor=actor,
            scopes=scopes_for("admin"),
            production=True,
        )
    client = api_as(members["viewer"])
    client.get(BASE)
    with django_assert_num_queries(6):
        assert client.get(BASE).json()["count"] == 4


def test_schema_documents_the_pipelines_api(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = set(schema["paths"])
    prefix = "/api/v1/teams/{team_slug}/pipelines/"
    expected = {
        prefix,
        prefix + "compile/",
        prefix + "{pipeline_name}/",
        prefix + "{pipeline_name}/versions/",
        prefix + "{pipeline_name}/versions/{ref}/",
        prefix + "{pipeline_name}/versions/{ref}/diff/{other}/",
        prefix + "{pipeline_name}/production/",
        prefix + "{pipeline_name}/production/rollback/",
    }
    assert expected <= paths, expected - paths
    create = schema["paths"][prefix + "{pipeline_name}/versions/"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(create["requestBody"]["content"])


def test_kernel_values_catch_an_unserializable_output(api_as, members, team):
    client = api_as(members["editor"])
    kernel = {"score": {"ok": False, "type": "socket", "size": None, "error": "cannot pickle 'socket' object"}}
    body = {"notebook": churn_notebook(), "kernel_values": kernel}
    response = client.post(BASE + "churn/versions/", body, format="json")
    assert response.status_code == 400
    [problem] = response.json()["error"]["detail"]["problems"]
    assert problem["code"] == "unserializable" and problem["step"] == "train" and problem["cell"] == 5
    bad = client.post(BASE + "churn/versions/", {**body, "kernel_values": {"score": 1}}, format="json")
    assert bad.status_code == 400 and error_code(bad) == "invalid"
    fine = {"score": {"ok": True, "type": "float", "size": 24, "error": None}}
    assert client.post(BASE + "churn/versions/", {**body, "kernel_values": fine}, format="json").status_code == 201
