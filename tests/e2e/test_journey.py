"""The whole journey in one sitting (issue 12), in a real browser on the real processes.

A new user of team "Demo" signs in, starts their workspace, runs the demo notebook's first cells
(examples/demo/form_reader.ipynb, reading the team's `warehouse` connection), promotes the cells
with the button and runs them; the run page's DAG fills in; the register step registers the best
model as `champion`; the deployments page deploys it and mints a key; a challenger run (one
parameter changed) registers `challenger`; the compare view shows both runs; the A/B tests page
starts a test; the traffic simulator sends forms through the real serve process; the results page
says "Ready to promote" and "Promote winner" moves the alias and the traffic. Then a cell is
broken on purpose, the failed run's task page offers "Open in notebook", and the reproducing
notebook opens in JupyterLab.

Processes: this test's live server (web), a control Celery worker and a pool agent
(tests/engine_e2e), JupyterHub with a user server and kernel (tests/e2e/test_workspaces.py's
hub), and `cellar-worker serve` (tests/serving). Screenshots: test-artifacts/screenshots/
quickstart-*.png; `CELLAR_UPDATE_DOC_IMAGES=1` also writes docs/images/quickstart-*.png.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Locator, Page, expect

from cellar.client import Client
from cellar_server.abtests.models import ABTest
from cellar_server.data.services import connection_create
from cellar_server.pipelines.models import Pipeline, PipelineRun
from cellar_server.registry.selectors import model_version_get
from cellar_server.serving.credentials import serve_token
from cellar_server.serving.models import Route
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import AuditEvent
from tests.e2e.conftest import sign_in, snap
from tests.e2e.journey_helpers import (
    DEPLOYMENT,
    MODEL,
    PIPELINE,
    SAMPLE_ROW,
    Shots,
    require_demo_packages,
    traffic_until_ready,
    watch_for_errors,
    write_notebook,
    write_warehouse,
)
from tests.e2e.test_workspaces import LAB_TIMEOUT, hub, hub_app, open_promote_dialog, prepare_workspace  # noqa: F401
from tests.engine_e2e.conftest import engine, stack, wait_for  # noqa: F401
from tests.factories import TeamFactory, UserFactory, add_member, mint_token
from tests.serving.conftest import start_serve

pytestmark = [pytest.mark.e2e, pytest.mark.processes]

HUB_URL = "http://127.0.0.1:18811"  # test_workspaces.HUB
RUN_TIMEOUT = 300_000  # a pipeline run on a busy 2-core machine: imports, four steps, two branches
METRIC = "auto_accepted"


def run_first_cells(lab: Page, last: int) -> None:
    """Run cells 1..last (Shift+Enter on each) once the kernel is idle; they finish without an error."""
    cells = lab.locator(".jp-NotebookPanel:visible .jp-Cell")
    expect(lab.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=LAB_TIMEOUT)
    cells.nth(1).locator(".jp-InputArea-editor").click()
    for _ in range(last):
        lab.keyboard.press("Shift+Enter")
    expect(cells.nth(last).locator(".jp-InputPrompt")).to_contain_text(f"[{last}]", timeout=120_000)
    expect(lab.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=LAB_TIMEOUT)
    expect(cells.locator(".jp-OutputArea-output").filter(has_text="Traceback")).to_have_count(0)


def open_stopped_workspace(page: Page, url: str) -> None:
    """The workspace page, once it can say "stopped": a hub that has just started may answer its
    first user lookups with an error (the page then shows it); reload until it does not."""
    deadline = time.monotonic() + 60
    while True:
        page.goto(url)
        state = page.get_by_test_id("workspace-state").or_(page.get_by_test_id("workspace-error"))
        expect(state).to_be_visible()
        if page.get_by_test_id("workspace-state").count() or time.monotonic() > deadline:
            break
        page.wait_for_timeout(2_000)
    expect(page.get_by_test_id("workspace-state")).to_have_text("stopped")


def promote_dialog(lab: Page) -> Locator:
    """Every cell selected, the toolbar's "Promote to production", "run now" ticked; not yet confirmed."""
    open_promote_dialog(lab)
    dialog = lab.locator(".jp-Dialog")
    dialog.get_by_test_id("cellar-run-now").check()
    expect(dialog.locator(".jp-mod-accept")).to_have_text("Promote to production")
    return dialog


def confirm_promote(lab: Page, dialog: Locator) -> None:
    dialog.locator(".jp-mod-accept").click()
    expect(lab.get_by_test_id("cellar-promoted")).to_contain_text("Production now runs", timeout=60_000)
    lab.locator(".jp-Dialog .jp-mod-accept").click()


def wait_run(engine, pipeline: Pipeline, number: int, state: str) -> PipelineRun:  # noqa: F811
    def finished():
        run = PipelineRun.all_teams.filter(pipeline=pipeline, number=number).first()
        return run if run and run.state in ("succeeded", "failed", "cancelled") else None

    run = wait_for(finished, timeout=RUN_TIMEOUT / 1000, what=f"run #{number} to finish", stack=engine)
    assert run.state == state, (run.state, run.error)
    return run


def test_notebook_to_ab_winner_and_back_to_the_notebook(page, hub_app, engine, live_server, tmp_path):  # noqa: F811
    require_demo_packages()
    shots = Shots()
    team = TeamFactory(slug="demo", name="Demo")
    nina = add_member(team, UserFactory(username="nina", first_name="Nina"), "admin")
    write_warehouse(tmp_path / "warehouse.sqlite3")
    connection_create(
        actor=Actor(user=nina),
        team=team,
        name="warehouse",
        kind="sql",
        config={"url": f"sqlite:///{tmp_path / 'warehouse.sqlite3'}"},
        description="The scanning team's warehouse.",
    )
    prepare_workspace(hub_app, "nina")  # JupyterLab's news toast off
    write_notebook(hub_app.workspace("nina"))
    serve = start_serve(api_url=live_server.url, store_dir=engine.store_dir, home=tmp_path, token=serve_token())
    problems: list[str] = []
    try:
        _journey(page, hub_app, engine, live_server, team, nina, serve, shots, problems)
    except BaseException:
        for number, tab in enumerate(page.context.pages):
            snap(tab, f"quickstart-failure-tab{number}")
        raise
    finally:
        serve.stop()
    shots.publish()
    assert not problems, problems


def _journey(page, hub_app, engine, live_server, team, nina, serve, shots, problems):  # noqa: F811
    # --- 1. sign in, start the workspace ------------------------------------------------------------
    sign_in(page, "nina", shots="quickstart")
    page.get_by_role("link", name="Demo").click()
    expect(page).to_have_url(re.compile(r"/t/demo/$"))
    shots(page, "team-home")
    open_stopped_workspace(page, f"{live_server.url}/t/demo/workspace/")
    page.get_by_test_id("profile-cpu").check()
    page.get_by_test_id("start-server").click()
    expect(page.get_by_test_id("workspace-state")).to_have_text("running", timeout=LAB_TIMEOUT)
    shots(page, "workspace")

    # --- 2. JupyterLab: the demo notebook's first cells (parameters, imports, functions, load) -------
    # The load cell reads the warehouse through the team's connection with the kernel's token.
    page.get_by_test_id("open-lab").click()
    page.locator(".jp-LabShell").wait_for(timeout=LAB_TIMEOUT)
    lab = page
    lab.goto(f"{HUB_URL}/user/nina/lab/tree/form_reader.ipynb")
    lab.locator(".jp-NotebookPanel:visible .jp-Cell").nth(9).wait_for(timeout=LAB_TIMEOUT)
    run_first_cells(lab, 4)
    expect(lab.locator(".jp-OutputArea-output").filter(has_text="(1849, 67)")).to_be_visible()
    shots(lab, "notebook")

    # --- 3. promote every cell to production and run it --------------------------------------------
    dialog = promote_dialog(lab)
    for step in ("load", "clean", "candidates", "train", "register"):
        expect(dialog.locator(f"[data-testid='cellar-steps'] tr[data-step='{step}']")).to_be_visible()
    shots(lab, "promote-dialog")
    confirm_promote(lab, dialog)
    pipeline = Pipeline.all_teams.get(team=team, name=PIPELINE)

    # The run page (a second tab: the Lab tab keeps its kernel): the DAG fills in as steps finish.
    cellar = watch_for_errors(page.context.new_page(), problems)
    cellar.goto(f"{live_server.url}/t/demo/pipelines/{PIPELINE}/runs/1/")
    dag = cellar.get_by_test_id("dag-card")
    expect(dag.locator("a.dag-node[data-step='load']")).to_have_attribute(
        "data-state", re.compile("running|succeeded"), timeout=RUN_TIMEOUT
    )
    shots(cellar, "run-in-progress")
    for step in ("load", "clean", "candidates", "train", "register"):
        expect(dag.locator(f"a.dag-node[data-step='{step}']")).to_have_attribute(
            "data-state", "succeeded", timeout=RUN_TIMEOUT
        )
    expect(cellar.get_by_test_id("run-state")).to_have_text("succeeded", timeout=30_000)
    expect(cellar.get_by_test_id("foreach-progress").get_by_test_id("fan-count")).to_have_text("2/2")
    shots(cellar, "run-succeeded")
    champion_run = wait_run(engine, pipeline, 1, "succeeded")
    champion = model_version_get(team=team, name=MODEL, alias="champion")
    assert champion is not None and champion.version == 1

    # --- 4. deploy the champion from the deployments page, mint a key ------------------------------
    cellar.goto(f"{live_server.url}/t/demo/deployments/")
    cellar.get_by_test_id("deployment-name").fill(DEPLOYMENT)
    cellar.get_by_test_id("deployment-version").select_option(str(champion.pk))
    shots(cellar, "deploy-form")
    cellar.get_by_test_id("deploy").click()
    expect(cellar).to_have_url(re.compile(rf"/t/demo/deployments/{DEPLOYMENT}/$"))
    expect(cellar.get_by_test_id(f"route-{champion.pk}")).to_contain_text("100%")
    cellar.get_by_test_id("key-name").fill("demo traffic")
    cellar.get_by_test_id("mint-key").click()
    key = cellar.get_by_test_id("new-key-value").input_value()
    assert key.startswith("cdk_")
    serve.wait_for(
        lambda: serve.predict("demo", DEPLOYMENT, {"dataframe_records": [SAMPLE_ROW]}, key).status_code == 200,
        timeout=180,
        what="serve to load the champion",
    )
    cellar.reload()
    expect(cellar.get_by_test_id(f"route-{champion.pk}")).to_contain_text("ready", timeout=30_000)
    shots(cellar, "deployment")

    # --- 5. the challenger: the same pipeline, one parameter changed (the API, as a script would) ---
    _, token = mint_token(team, nina)
    client = Client(live_server.url, token)
    client.request(
        "POST",
        f"teams/demo/pipelines/{PIPELINE}/runs/",
        json={"parameters": {"extra_features": True, "alias": "challenger"}},
    )
    challenger_run = wait_run(engine, pipeline, 2, "succeeded")
    challenger = model_version_get(team=team, name=MODEL, alias="challenger")
    assert challenger is not None and challenger.version == 2

    # The compare view, reached as a person does: Experiments -> the pipeline's experiment -> tick
    # both runs -> Compare selected.
    cellar.goto(f"{live_server.url}/t/demo/experiments/")
    cellar.get_by_test_id("experiment-table").get_by_role("link", name=re.compile(PIPELINE)).click()
    for run in (champion_run, challenger_run):
        cellar.locator(f"tr[data-run='{run.tracking_run}'] input[name='run']").check()
    cellar.get_by_test_id("compare-button").click()
    expect(cellar).to_have_url(re.compile(r"/t/demo/compare/"))
    expect(cellar.get_by_test_id("run-legend").locator("li")).to_have_count(2)
    expect(cellar.get_by_test_id("diff-table")).to_be_visible()
    shots(cellar, "compare")

    # --- 6. the A/B test from its page's form ------------------------------------------------------
    cellar.goto(f"{live_server.url}/t/demo/ab-tests/")
    cellar.get_by_label("Name", exact=True).fill("ink profiles vs pixels")
    cellar.get_by_label("Challenger version ids").fill(str(challenger.pk))
    cellar.get_by_label("Primary metric (event name)").fill(METRIC)
    shots(cellar, "abtest-form")
    cellar.get_by_test_id("start-test").click()
    expect(cellar.get_by_test_id("decision-state")).to_have_text("Collecting data")
    test = ABTest.all_teams.get(team=team, name="ink profiles vs pixels")
    serve.wait_for(
        lambda: (
            len(
                set(
                    serve.predict(
                        "demo",
                        DEPLOYMENT,
                        {"dataframe_records": [{**SAMPLE_ROW, "unit_id": f"probe-{i}"} for i in range(20)]},
                        key,
                    ).json()["versions"]
                )
            )
            == 2
        ),
        timeout=180,
        what="serve to load the challenger and split traffic",
    )

    # --- 7. traffic with a known effect, the result, "Promote winner" -------------------------------
    results = traffic_until_ready(client, test=test.pk, serve_url=serve.url, key=key, metric=METRIC)
    assert results["decision"]["winner"] == "b", results["decision"]  # the challenger, as simulated
    cellar.goto(f"{live_server.url}/t/demo/ab-tests/{test.pk}/")
    expect(cellar.get_by_test_id("decision-state")).to_have_text("Ready to promote")
    expect(cellar.get_by_test_id("forest-plot")).to_have_attribute("data-rendered", "true")
    shots(cellar, "abtest-ready")
    cellar.get_by_test_id("promote").click()
    expect(cellar.get_by_test_id("test-status")).to_have_text("promoted")
    expect(cellar.locator(".messages")).to_contain_text("Winner promoted")
    shots(cellar, "abtest-promoted")

    assert ABTest.all_teams.get(pk=test.pk).status == "promoted"
    assert model_version_get(team=team, name=MODEL, alias="champion").pk == challenger.pk
    assert [(r.version_id, r.weight) for r in Route.all_teams.filter(team=team)] == [(str(challenger.pk), 1.0)]
    verbs = set(AuditEvent.all_teams.filter(team=team, actor=nina).values_list("verb", flat=True))
    assert {"deployment.create", "deployment.key.create", "abtest.promote", "model.alias.set"} <= verbs, verbs
    serve.wait_for(
        lambda: (
            serve.predict("demo", DEPLOYMENT, [{**SAMPLE_ROW, "unit_id": "form-1"}], key).json()["versions"]
            == [str(challenger.pk)]
        ),
        what="serve to send every form to the winner",
    )

    # --- 8. break a cell on purpose, see the failed run, open it in a notebook ----------------------
    lab.bring_to_front()
    candidates_cell = lab.locator(".jp-NotebookPanel:visible .jp-Cell").nth(6)
    candidates_cell.locator(".jp-InputArea-editor").click()
    lab.keyboard.press("Control+End")
    lab.keyboard.type("\nshare = 1 / (len(candidates) - 2)")
    lab.keyboard.press("Escape")
    confirm_promote(lab, promote_dialog(lab))
    wait_run(engine, pipeline, 3, "failed")

    cellar.bring_to_front()
    cellar.goto(f"{live_server.url}/t/demo/pipelines/{PIPELINE}/runs/3/")
    expect(cellar.get_by_test_id("run-state")).to_have_text("failed")
    expect(cellar.get_by_test_id("run-error")).to_contain_text("ZeroDivisionError")
    shots(cellar, "run-failed")
    cellar.get_by_test_id("failed-task-link").click()
    expect(cellar.get_by_test_id("open-in-notebook")).to_be_visible()
    shots(cellar, "failed-task")
    cellar.get_by_test_id("open-in-notebook").click()
    expect(cellar).to_have_url(re.compile(rf"/tree/pulled/{PIPELINE}-3-candidates\.ipynb"), timeout=LAB_TIMEOUT)
    expect(cellar.locator(".jp-Cell").filter(has_text="len(candidates) - 2")).to_be_visible(timeout=LAB_TIMEOUT)
    expect(cellar.locator(".jp-Cell").filter(has_text="ZeroDivisionError").first).to_be_visible()
    shots(cellar, "open-in-notebook")
    assert (hub_app.workspace("nina") / "pulled" / f"{PIPELINE}-3-candidates.ipynb").exists()
