"""The pipeline pages in a real browser: the list (empty, then filled), a pipeline's versions and
production alias, an admin's promote and rollback, a version's DAG, and the diff of two versions."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from cellar_server.pipelines import services
from cellar_server.pipelines.models import Pipeline
from cellar_server.teams.actors import Actor
from cellar_server.teams.roles import scopes_for
from tests.e2e.conftest import SCREENSHOTS, sign_in, snap, visit
from tests.pipelines.conftest import code_cell, markdown_cell, notebook

pytestmark = pytest.mark.e2e

POOLS = '{"cpu": {"cpu": 8, "memory": "32Gi"}, "gpu": {"cpu": 8, "memory": "64Gi", "gpu": 2}}'


def fraud_notebook(*, threshold: float = 0.5, model: str = "logistic", extra_step: bool = False) -> dict:
    cells = [
        markdown_cell("# Fraud model\nLoad, featurize, train one model per region, pick the best."),
        code_cell("import json\nimport math\nimport statistics", "imports"),
        code_cell(f"threshold = {threshold}\nmodel_kind = '{model}'\nregions = ['eu', 'us', 'apac']", "parameters"),
        code_cell(
            "def featurize(row):\n    return [row['amount'] / 100, math.log1p(row['age'])]",
            "functions",
        ),
        code_cell(
            "rows = [{'amount': i * 7 % 300, 'age': i % 60, 'fraud': i % 11 == 0, 'region': regions[i % 3]}\n"
            "        for i in range(600)]",
            "step:load",
        ),
        code_cell("features = [featurize(r) for r in rows]\nlabels = [r['fraud'] for r in rows]", "step:featurize"),
        code_cell(
            "picked = [f for f, r in zip(features, rows) if r['region'] == region]\n"
            "weight = statistics.mean(p[0] for p in picked)\n"
            "model = {'kind': model_kind, 'region': region, 'weight': weight}",
            "step:train",
            "foreach:regions:region",
            "gpu:1",
            "memory:8Gi",
            "retry:2",
        ),
        code_cell("best = max(model, key=lambda m: m['weight'])\nauc = 0.9", "step:pick", "join"),
    ]
    if extra_step:
        cells.append(
            code_cell("flagged = sum(1 for x in labels if x)\nreport = json.dumps({'auc': auc})", "step:report")
        )
    else:
        cells.append(code_cell("report = json.dumps({'auc': auc, 'best': best})", "step:report"))
    return notebook(*cells)


@pytest.fixture
def fraud(team, members, settings):
    settings.CELLAR_POOLS = POOLS

    def make(**kwargs):
        return services.pipeline_version_create(
            team=team,
            pipeline_name="fraud-model",
            notebook=fraud_notebook(**{k: v for k, v in kwargs.items() if k != "production"}),
            notebook_name="fraud.ipynb",
            actor=Actor(user=members["editor"]),
            scopes=scopes_for("admin"),
            production=kwargs.get("production", False),
        ).version

    return make


def test_an_admin_promotes_rolls_back_and_reads_versions(page: Page, team, members, fraud):
    sign_in(page, "admin-user", shots="pipelines-admin")
    visit(page, "/t/acme/pipelines/", "pipelines-list-empty", ready="[data-testid=pipelines-empty]")
    expect(page.get_by_test_id("pipelines-empty")).to_contain_text("cellar promote notebook.ipynb --pipeline NAME")
    expect(page.locator("nav.sidebar a[data-nav=pipelines]")).to_have_class(re.compile("active"))

    v1 = fraud(production=True)
    v2 = fraud(threshold=0.7, model="boosted")
    v3 = fraud(threshold=0.7, model="boosted", extra_step=True)
    visit(page, "/t/acme/pipelines/", "pipelines-list", ready="[data-testid=pipeline-table]")
    row = page.locator("tr[data-pipeline=fraud-model]")
    expect(row).to_contain_text("production · v1")
    expect(row.locator("td.num")).to_have_text("3")

    row.get_by_role("link", name="fraud-model").click()
    expect(page).to_have_url(re.compile(r"/t/acme/pipelines/fraud-model/$"))
    expect(page.get_by_test_id("production-version")).to_have_text("v1")
    expect(page.locator("tr[data-version='1'] [data-testid=production-badge]")).to_be_visible()
    snap(page, "pipelines-pipeline")

    # Make v3 production, then roll back to v1.
    page.locator("tr[data-version='3']").get_by_role("button", name="Make production").click()
    expect(page.locator(".msg.success")).to_contain_text("Production is now version 3")
    expect(page.get_by_test_id("production-version")).to_have_text("v3")
    page.get_by_test_id("rollback").click()
    expect(page.locator(".msg.success")).to_contain_text("Rolled back: production is version 1")
    expect(page.get_by_test_id("production-version")).to_have_text("v1")
    expect(page.get_by_test_id("production-history").locator("li")).to_have_count(3)
    expect(page.get_by_test_id("rollback")).to_be_disabled()
    snap(page, "pipelines-after-rollback")
    assert Pipeline.all_teams.get().production_id == v1.pk

    # The version page: the DAG with every step, foreach/join/gpu marked, edges named by their variables.
    page.locator("tr[data-version='3']").get_by_role("link", name="v3").click()
    dag = page.get_by_test_id("dag")
    expect(dag).to_be_visible()
    expect(dag.locator("a.dag-node")).to_have_count(5)
    expect(dag.locator("a.dag-foreach")).to_have_attribute("data-step", "train")
    expect(dag.locator("a.dag-join")).to_have_attribute("data-step", "pick")
    expect(dag.locator("a.dag-gpu")).to_have_count(1)
    expect(dag.locator("g.dag-label text", has_text="model")).to_be_visible()
    expect(page.get_by_test_id("version-id")).to_have_text(v3.hash)
    snap(page, "pipelines-version")
    page.get_by_test_id("dag-card").screenshot(path=SCREENSHOTS / "pipelines-version-dag.png")
    dag.locator("a[data-step=train]").click()
    expect(page).to_have_url(re.compile("#step-train$"))
    expect(page.locator("#step-train")).to_contain_text("foreach region in regions")
    page.locator("#step-train details.prelude summary").click()
    expect(page.locator("#step-train details.prelude pre")).to_contain_text("def featurize")
    snap(page, "pipelines-version-step")

    # Compare v1 with v3 from the pipeline page's form.
    page.goto("/t/acme/pipelines/fraud-model/")
    form = page.get_by_test_id("compare-form")
    form.locator("select[name=from]").select_option("1")
    form.locator("select[name=to]").select_option("3")
    form.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/compare/\?from=1&to=3"))
    expect(page.locator("[data-step=report][data-status=changed]")).to_be_visible()
    expect(page.get_by_test_id("parameter-diff")).to_contain_text("model_kind")
    expect(page.get_by_test_id("parameter-diff")).to_contain_text('"boosted"')
    expect(page.locator("#step-report table.sbs tr.insert, #step-report table.sbs tr.replace").first).to_be_visible()
    expect(page.get_by_test_id("diff-summary")).to_contain_text("3 changed")
    snap(page, "pipelines-compare")
    assert v2.number == 2


def test_an_editor_sees_the_alias_but_cannot_move_it(open_page, team, members, fraud):
    fraud(production=True)
    fraud(threshold=0.9)
    page = open_page()
    sign_in(page, "editor-user", shots="pipelines-editor")
    visit(page, "/t/acme/pipelines/fraud-model/", "pipelines-pipeline-editor", ready="[data-testid=versions]")
    expect(page.get_by_test_id("rollback")).to_be_disabled()
    expect(page.get_by_test_id("make-production")).to_have_count(0)
    expect(page.get_by_test_id("production")).to_contain_text("Only team admins move the production alias")
    visit(page, "/t/acme/pipelines/fraud-model/versions/2/", "pipelines-version-editor", ready="[data-testid=dag]")
    expect(page.get_by_test_id("make-production")).to_have_count(0)


def test_another_team_gets_not_found(open_page, team, members, outsider, fraud):
    fraud()
    page = open_page()
    sign_in(page, "outsider", shots="pipelines-outsider")
    visit(page, "/t/acme/pipelines/fraud-model/", "pipelines-outsider-404", status=404)
