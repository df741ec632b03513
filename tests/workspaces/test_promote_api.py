"""The notebook's promote dialog through Cellar's API: preview (steps, edges, problems, diff against
production, who may promote), then one click: version + production + run, by role and team."""

from __future__ import annotations

import pytest

from cellar_server.pipelines.models import Pipeline, PipelineRun
from tests.pipelines.conftest import code_cell, notebook

pytestmark = pytest.mark.django_db
PREVIEW = "/api/v1/teams/acme/workspaces/promote-preview/"
PROMOTE = "/api/v1/teams/acme/workspaces/promote/"


def sample(scale: int = 2) -> dict:
    return notebook(
        code_cell("n = 10", "parameters"),
        code_cell("rows = list(range(n))", "step:load"),
        code_cell(f"total = sum(r * {scale} for r in rows)", "step:train"),
    )


def body(**extra) -> dict:
    return {"notebook": sample(), "pipeline": "demo", "notebook_name": "demo.ipynb", **extra}


def test_preview_shows_steps_edges_parameters_and_a_new_target(members, token_client, team):
    client, _ = token_client(team, members["editor"])
    response = client.post(PREVIEW, body(), format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["ok"] is True
    assert [s["name"] for s in data["steps"]] == ["load", "train"]
    assert data["edges"] == [{"source": "load", "target": "train", "variables": ["rows"]}]
    assert [p["name"] for p in data["parameters"]] == ["n"]
    assert data["target"] == {"name": "demo", "exists": False, "production": None}
    assert data["diff"] is None
    assert (data["can_save"], data["can_promote"]) == (True, False)
    assert data["promoters"] == ["admin-user", "owner-user"]
    assert not Pipeline.all_teams.exists()  # a preview writes nothing


def test_preview_puts_compile_errors_on_their_cell(members, token_client, team):
    client, _ = token_client(team, members["editor"])
    broken = notebook(code_cell("x = 1", "step:a"), code_cell("y = undefined_thing + x", "step:b"))
    data = client.post(PREVIEW, {"notebook": broken, "pipeline": "demo"}, format="json").json()
    assert data["ok"] is False
    problem = data["problems"][0]
    assert problem["code"] == "undefined_name" and problem["cell"] == 1


def test_admin_promotes_in_one_click_and_the_next_preview_diffs_against_production(members, token_client, team):
    client, _ = token_client(team, members["admin"])
    response = client.post(PROMOTE, body(production=True, run_now=True), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["is_production"] is True and data["version"]["number"] == 1
    assert data["run"]["number"] == 1 and data["run"]["url"].endswith("/t/acme/pipelines/demo/runs/1/")
    assert PipelineRun.all_teams.filter(pipeline__name="demo").count() == 1
    changed = {**body(), "notebook": notebook(*sample()["cells"][:2], code_cell("total = sum(rows)", "step:train"))}
    preview = client.post(PREVIEW, changed, format="json").json()
    assert preview["target"]["production"]["number"] == 1
    assert preview["diff"]["same_as_production"] is False
    assert [s["name"] for s in preview["diff"]["steps"] if s["status"] == "changed"] == ["train"]


def test_promoting_the_same_content_twice_makes_one_version(members, token_client, team):
    client, _ = token_client(team, members["admin"])
    assert client.post(PROMOTE, body(production=True), format="json").status_code == 201
    again = client.post(PROMOTE, body(production=True), format="json")
    assert again.status_code == 200 and again.json()["created"] is False


@pytest.mark.parametrize(
    ("role", "production", "status"),
    [("viewer", False, 403), ("editor", False, 201), ("editor", True, 403), ("admin", True, 201)],
    ids=["viewer-save", "editor-save", "editor-promote", "admin-promote"],
)
def test_who_may_save_and_who_may_promote(members, token_client, team, role, production, status):
    client, _ = token_client(team, members[role])
    response = client.post(PROMOTE, body(production=production), format="json")
    assert response.status_code == status, response.content


def test_another_teams_token_cannot_promote_here(members, token_client, team, outsider, other_team):
    client, _ = token_client(other_team, outsider)
    response = client.post(PROMOTE, body(production=True), format="json")
    assert response.status_code == 404  # a team the token's user is not in does not exist for them
    assert not Pipeline.all_teams.exists()


def test_a_non_member_session_sees_no_team(outsider, api_as, team):
    response = api_as(outsider).post(PREVIEW, body(), format="json")
    assert response.status_code == 404
