"""The registry pages in a real browser: empty list, models list, a model's aliases/chart/versions,
an admin moving `champion` from the page (and a guard refusing it), a version's lineage and a diff."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from cellar.models import reference_profile
from cellar_server.registry import guards, selectors
from cellar_server.registry.register import version_register
from cellar_server.teams.actors import Actor
from tests.e2e.conftest import sign_in, snap, visit
from tests.registry.conftest import logged_run, training_data  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _store(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"


@pytest.fixture(autouse=True)
def _no_leftover_guards():
    before = list(guards._guards)
    yield
    guards._guards[:] = before


@pytest.fixture
def churn(team, members, logged_run, training_data):  # noqa: F811
    actor = Actor(user=members["admin"])
    profile = reference_profile(training_data)
    for auc, f1 in ((0.71, 0.60), (0.79, 0.66), (0.76, 0.69), (0.83, 0.72)):
        run = logged_run(metrics={"auc": auc, "f1": f1}, params={"C": auc * 2, "penalty": "l2"})
        version_register(
            team=team,
            actor=actor,
            name="churn",
            source=f"runs:/{run.run_uuid}/model",
            alias="champion",
            gate="auc",
            profile=profile,
            description="logistic regression",
        )
    run = logged_run(metrics={"auc": 0.9})
    version_register(team=team, actor=actor, name="fraud", source=f"runs:/{run.run_uuid}/model")
    return selectors.model_for_name(team=team, name="churn")


def test_empty_models_page(page: Page, members):
    sign_in(page, "viewer-user", shots="registry-viewer")
    visit(page, "/t/acme/models/", "registry-list-empty", ready="[data-testid=models-empty]")
    expect(page.get_by_test_id("models-empty")).to_contain_text("cellar.register_model")
    expect(page.locator("nav.sidebar a[data-nav=models]")).to_have_class(re.compile("active"))


def test_admin_reads_moves_alias_and_diffs(page: Page, team, churn):
    sign_in(page, "admin-user", shots="registry-admin")
    visit(page, "/t/acme/models/", "registry-list", ready="[data-testid=model-table]")
    expect(page.locator("tr[data-model=churn]")).to_contain_text("champion · v4")
    expect(page.locator("tr[data-model=fraud]")).to_contain_text("none")

    page.locator("tr[data-model=churn]").get_by_role("link", name="churn").click()
    expect(page).to_have_url(re.compile(r"/t/acme/models/churn/$"))
    expect(page.get_by_test_id("alias-champion")).to_have_text("champion · v4")
    expect(page.locator("#metrics-chart .main-svg").first).to_be_visible()
    expect(page.locator("#metrics-chart .scatterlayer .trace")).to_have_count(2)  # auc and f1
    expect(page.get_by_test_id("alias-history").locator("li")).to_have_count(3)  # v3 did not pass the gate
    snap(page, "registry-model")

    # Roll champion back to v2 from the page, with a reason.
    form = page.get_by_test_id("alias-form")
    form.locator("select[name=version]").select_option("2")
    form.locator("input[name=reason]").fill("v4 misbehaves in prod")
    form.get_by_role("button", name="Move").click()
    expect(page.locator(".msg.success")).to_contain_text("'champion' now points at v2")
    expect(page.get_by_test_id("alias-champion")).to_have_text("champion · v2")
    expect(page.get_by_test_id("alias-history")).to_contain_text("v4 misbehaves in prod")
    snap(page, "registry-model-after-move")

    # A guard (an A/B test, say) freezes champion: the page says why and nothing moves.
    guards.register_alias_guard(
        lambda t, m, alias, v: "A/B test 'new-ranker' is running" if alias == "champion" else None
    )
    form = page.get_by_test_id("alias-form")
    form.locator("select[name=version]").select_option("1")
    form.get_by_role("button", name="Move").click()
    expect(page.locator(".msg.error")).to_contain_text("A/B test 'new-ranker' is running")
    expect(page.get_by_test_id("alias-champion")).to_have_text("champion · v2")
    snap(page, "registry-model-frozen")

    # The version page: lineage, signature, profile.
    page.locator("tr[data-version='2']").get_by_role("link", name="v2").click()
    expect(page.get_by_test_id("lineage-run")).to_contain_text("train-1")
    expect(page.get_by_test_id("lineage-pipeline")).to_contain_text("not a pipeline step")
    expect(page.get_by_test_id("lineage-data")).to_contain_text("cellar.dataset")
    expect(page.get_by_test_id("signature")).to_contain_text("double")
    expect(page.get_by_test_id("profile")).to_contain_text("mean")
    expect(page.get_by_test_id("version-alias")).to_have_text("champion")
    snap(page, "registry-version")

    # Diff v2 against v4.
    page.get_by_test_id("diff-form").locator("select[name=from]").select_option("4")
    page.get_by_test_id("diff-form").get_by_role("button", name="Diff").click()
    expect(page).to_have_url(re.compile(r"/compare/\?"))
    expect(page.get_by_test_id("diff-metrics")).to_contain_text("auc")
    expect(page.get_by_test_id("diff-params")).to_contain_text("C")
    expect(page.get_by_test_id("diff-code")).to_contain_text("no step code")
    snap(page, "registry-compare")


def test_viewer_sees_no_alias_form(page: Page, churn):
    sign_in(page, "viewer-user", shots="registry-viewer-model")
    visit(page, "/t/acme/models/churn/", "registry-model-viewer", ready="[data-testid=aliases]")
    expect(page.get_by_test_id("alias-form")).to_have_count(0)
    expect(page.get_by_test_id("aliases")).to_contain_text("champion · v4")


def test_a_version_from_a_pipeline_step_shows_its_code_and_environment(
    page: Page,
    team,
    members,
    settings,
    tmp_path,
    training_data,  # noqa: F811
):
    """Lineage through the engine's records: version <- tracking run <- pipeline run/version <- step code."""
    from sklearn.linear_model import LogisticRegression

    from cellar.models import save_model
    from cellar_server.pipelines import services as pipelines
    from cellar_server.pipelines.engine.runs import run_create
    from cellar_server.pipelines.models import Task
    from cellar_server.teams.roles import scopes_for
    from cellar_server.tracking.models import Run
    from tests.pipelines.conftest import churn_notebook
    from tests.registry.conftest import upload_dir

    settings.CELLAR_POOLS = '{"cpu": {"cpu": 8, "memory": "32Gi"}}'
    actor = Actor(user=members["admin"])
    sources = []
    for threshold in (0.5, 0.7):
        created = pipelines.pipeline_version_create(
            team=team,
            pipeline_name="churn-train",
            notebook=churn_notebook(
                threshold=threshold, train_extra="\nscore = score * 1.0" if threshold > 0.6 else ""
            ),
            notebook_name="churn.ipynb",
            actor=actor,
            scopes=scopes_for("admin"),
        )
        prun = run_create(
            team=team, pipeline=created.version.pipeline, version=created.version, parameters={}, actor=actor
        )
        task = Task.all_teams.filter(run=prun).first()
        tracking = Run.all_teams.get(run_uuid=prun.tracking_run)
        folder = tmp_path / f"m{threshold}"
        y = (training_data["a"] > 0).astype(int)
        save_model(LogisticRegression().fit(training_data, y), folder, input_example=training_data.head(2))
        upload_dir(team, folder, tracking.artifact_uri.removeprefix("mlflow-artifacts:/") + "/model")
        version, _ = version_register(
            team=team,
            actor=actor,
            name="churn",
            source=f"runs:/{prun.tracking_run}/model",
            task_id=task.pk,
            metrics={"auc": threshold + 0.2},
        )
        sources.append((version, task))

    sign_in(page, "viewer-user", shots="registry-lineage")
    visit(page, "/t/acme/models/churn/versions/2/", "registry-version-pipeline", ready="[data-testid=lineage]")
    lineage = page.get_by_test_id("lineage-pipeline")
    expect(lineage).to_contain_text("churn-train v2")
    expect(lineage).to_contain_text(f"step {sources[1][1].step}")
    expect(lineage).to_contain_text("churn.ipynb")
    page.get_by_test_id("step-code").locator("summary").click()
    expect(page.get_by_test_id("step-code")).to_be_visible()
    snap(page, "registry-version-pipeline-code")
    page.get_by_role("link", name="churn-train v2").click()
    expect(page).to_have_url(re.compile(r"/t/acme/pipelines/churn-train/versions/2/$"))
