"""Pipeline pages: access per role and across teams, what each page shows, the alias buttons for
admins only, pinned query counts. The browser journey is in tests/e2e/test_pipeline_pages.py."""

from __future__ import annotations

import re

import pytest

from cellar_server.pipelines import services
from cellar_server.pipelines.models import Pipeline, ProductionMove
from cellar_server.teams.actors import Actor
from cellar_server.teams.roles import scopes_for
from tests.conftest import ROLES
from tests.pipelines.conftest import churn_notebook, code_cell, notebook

pytestmark = pytest.mark.django_db

T = "/t/acme/pipelines/"


def promote(team, user, nb, *, name="churn", production=False):
    return services.pipeline_version_create(
        team=team,
        pipeline_name=name,
        notebook=nb,
        actor=Actor(user=user),
        scopes=scopes_for("admin"),
        production=production,
    ).version


@pytest.fixture
def churn(team, members):
    admin = members["admin"]
    v1 = promote(team, admin, churn_notebook(), production=True)
    v2 = promote(team, admin, churn_notebook(threshold=0.8, train_extra="\nscore = round(score, 2)"))
    return v1, v2


def login(client, user):
    client.force_login(user)
    return client


PAGES = [T, T + "churn/", T + "churn/versions/2/", T + "churn/compare/?from=1&to=2"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PAGES)
def test_members_see_every_page(client, members, churn, role, path):
    assert login(client, members[role]).get(path).status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_another_team_gets_404_and_anonymous_the_login(client, outsider, churn, path):
    assert client.get(path).status_code == 302
    assert login(client, outsider).get(path).status_code == 404


@pytest.mark.parametrize(
    "path", [T + "nope/", T + "churn/versions/9/", T + "churn/versions/zz/", T + "churn/compare/?from=1&to=99"]
)
def test_missing_things_are_404(client, members, churn, path):
    assert login(client, members["viewer"]).get(path).status_code == 404


def test_the_empty_list_says_how_to_promote(client, members, team):
    html = login(client, members["viewer"]).get(T).content.decode()
    assert "No pipelines yet" in html and "cellar promote notebook.ipynb --pipeline NAME" in html
    assert 'data-nav="pipelines"' in html and f'href="{T}"' in html


def test_the_list_shows_versions_and_production(client, members, churn):
    html = login(client, members["viewer"]).get(T).content.decode()
    row = re.search(r'<tr data-pipeline="churn">(.*?)</tr>', html, re.S).group(1)
    assert ">2</td>" in row and "production · v1" in row and churn[0].hash[:12] in row


def test_the_pipeline_page_for_an_admin(client, members, churn):
    v1, v2 = churn
    html = login(client, members["admin"]).get(T + "churn/").content.decode()
    assert 'data-testid="production-version"' in html and ">v1</a>" in html
    assert html.count('data-testid="make-production"') == 1  # v2 only: v1 already is production
    assert 'data-testid="rollback"' in html and "disabled" in re.search(
        r'<button[^>]*data-testid="rollback"[^>]*>', html
    ).group(0)
    assert v1.hash[:12] in html and v2.hash[:12] in html
    assert 'name="from"' in html and 'name="to"' in html


def test_admins_promote_and_roll_back_from_the_page(client, members, churn):
    v1, v2 = churn
    login(client, members["admin"])
    response = client.post(T + "churn/production/", {"version": v2.hash})
    assert response.status_code == 302 and response["Location"] == T + "churn/"
    assert Pipeline.all_teams.get().production_id == v2.pk
    html = client.get(T + "churn/").content.decode()
    assert "Production is now version 2" in html
    form = re.search(r'<form[^>]*data-testid="rollback-form".*?</form>', html, re.S).group(0)
    assert "csrfmiddlewaretoken" in form and "Roll back to v1" in form
    client.post(T + "churn/production/rollback/")
    assert Pipeline.all_teams.get().production_id == v1.pk
    html = client.get(T + "churn/").content.decode()
    assert "Rolled back: production is version 1" in html
    history = re.search(r'data-testid="production-history">(.*?)</ul>', html, re.S).group(1)
    assert history.count("<li") == 3 and "rollback" in history
    nothing = client.post(T + "churn/production/rollback/", follow=True).content.decode()
    assert "no earlier production version" in nothing


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_others_cannot_move_the_alias(client, members, churn, role):
    v1, v2 = churn
    login(client, members[role])
    html = client.get(T + "churn/").content.decode()
    assert 'data-testid="make-production"' not in html and 'data-testid="rollback-form"' not in html
    assert "Only team admins move the production alias" in html
    assert client.post(T + "churn/production/", {"version": v2.hash}).status_code == 403
    assert client.post(T + "churn/production/rollback/").status_code == 403
    assert ProductionMove.all_teams.count() == 1


def test_pages_refuse_get_for_moves(client, members, churn):
    assert login(client, members["admin"]).get(T + "churn/production/rollback/").status_code == 405


def test_the_version_page_draws_the_dag_and_lists_steps(client, members, churn):
    html = login(client, members["viewer"]).get(T + "churn/versions/2/").content.decode()
    svg = re.search(r"<svg class=\"dag\".*?</svg>", html, re.S).group(0)
    assert re.findall(r'data-step="([^"]+)"', svg) == ["load", "split", "train", "pick", "report"]
    assert 'class="dag-node dag-foreach' in svg and 'class="dag-node dag-join' in svg
    assert "foreach fold<" in svg and "foreach fold in fold_ids" in html
    assert 'data-edge="train-&gt;pick"' in svg and ">score</text>" in svg
    assert 'id="step-train"' in html and "score = round(score, 2)" in html
    assert "threshold" in html and "0.8" in html
    assert churn[1].hash in html and "Compare with v1" in html
    assert "Compare with production (v1)" in html
    assert "Make production" in login(client, members["admin"]).get(T + "churn/versions/2/").content.decode()


def test_the_dag_marks_gpu_steps_and_prev_edges(client, members, team, settings):
    settings.CELLAR_POOLS = '{"cpu": {"cpu": 2}, "gpu": {"cpu": 4, "gpu": 1}}'
    nb = notebook(
        code_cell("a = 1", "step:prep"),
        code_cell("b = 2", "step:fit", "gpu:1", "prev:prep"),
    )
    promote(team, members["admin"], nb, name="gpu")
    html = login(client, members["viewer"]).get(T + "gpu/versions/1/").content.decode()
    assert "dag-gpu" in html and "gpu ×1 GPU" in html
    assert 'class="dag-edge dag-edge-control"' in html  # prev: only, no data: dashed


def test_user_code_is_escaped(client, members, team):
    nb = notebook(code_cell("s = '<script>alert(1)</script>'", "step:a"), code_cell("t = s + '<b>'", "step:b"))
    promote(team, members["admin"], nb, name="xss")
    html = login(client, members["viewer"]).get(T + "xss/versions/1/").content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_the_compare_page_shows_both_sides(client, members, churn):
    html = login(client, members["viewer"]).get(T + "churn/compare/?from=1&to=2").content.decode()
    train = re.search(r'<article class="step-diff changed" id="step-train".*?</article>', html, re.S).group(0)
    assert re.search(r'<tr class="insert">.*?score = round\(score, 2\)</td>', train, re.S)
    assert 'data-step="load" data-status="unchanged"' in html
    summary = re.search(r'data-testid="diff-summary">(.*?)</p>', html, re.S).group(1)
    assert "1 changed" in summary and "0 added" in summary and "1 parameter change" in summary
    params = re.search(r'data-testid="parameter-diff">(.*?)</section>', html, re.S).group(1)
    assert "threshold" in params and "0.5" in params and "0.8" in params
    assert "Same Python and the same packages." in html


def test_compare_defaults_to_the_two_newest_and_shows_added_and_removed_steps(client, members, team):
    admin = members["admin"]
    promote(team, admin, notebook(code_cell("a = 1", "step:first"), code_cell("b = a", "step:gone")), name="p")
    promote(team, admin, notebook(code_cell("a = 1", "step:first"), code_cell("c = a * 2", "step:fresh")), name="p")
    html = login(client, members["viewer"]).get(T + "p/compare/").content.decode()
    assert "Compare <a" in html and ">v1</a> → <a" in html
    assert 'data-step="gone" data-status="removed"' in html and 'data-step="fresh" data-status="added"' in html
    fresh = re.search(r'id="step-fresh".*?</article>', html, re.S).group(0)
    assert '<tr class="insert">' in fresh and "c = a * 2" in fresh and '<tr class="delete">' not in fresh


@pytest.mark.parametrize(
    "path,queries",
    [
        (T, 6),
        (T + "churn/", 10),
        (T + "churn/versions/2/", 7),
        (T + "churn/compare/?from=1&to=2", 8),
    ],
)
def test_page_query_counts_are_pinned(client, members, churn, django_assert_num_queries, path, queries):
    login(client, members["admin"])
    client.get(path)
    with django_assert_num_queries(queries):
        assert client.get(path).status_code == 200


def test_page_queries_do_not_grow_with_versions_and_moves(client, members, team, churn, django_assert_num_queries):
    admin = members["admin"]
    for t in range(4):
        version = promote(team, admin, churn_notebook(threshold=t))
        services.pipeline_production_move(
            team=team, pipeline=version.pipeline, version=version, actor=Actor(user=admin)
        )
        promote(team, admin, churn_notebook(), name=f"other-{t}")
    login(client, admin)
    for path, queries in ((T, 6), (T + "churn/", 10), (T + "churn/versions/5/", 7), (T + "churn/compare/", 8)):
        client.get(path)
        with django_assert_num_queries(queries):
            assert client.get(path).status_code == 200
