"""The deployments pages in a real browser: the empty state, a deployment with a failed and a
ready version, traffic and latency charts (Plotly) from reported prediction stats, the drift
table with its warning, and an admin minting a key that is shown once."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from cellar_server.serving import services
from cellar_server.teams.actors import SYSTEM
from tests.e2e.conftest import sign_in, snap, visit
from tests.serving.conftest import constant_model, register_version, training_data

pytestmark = pytest.mark.e2e


@pytest.fixture
def deployment(team, tmp_path, settings):
    store = tmp_path / "artifacts"
    store.mkdir()
    settings.ARTIFACT_STORE_URL = f"file://{store}"
    frame, _ = training_data()
    good = register_version(team, "churn", constant_model(1.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path)
    bad = register_version(team, "churn", constant_model(2.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path)
    deployment = services.deployment_create(
        team=team,
        actor=SYSTEM,
        name="churn-api",
        description="Churn scores for the checkout flow",
        routes=[{"version_id": str(good.pk), "weight": 0.9}, {"version_id": str(bad.pk), "weight": 0.1}],
    )
    services.health_report(
        reporter="serve@box",
        versions=[
            {"deployment_id": deployment.pk, "version_id": str(good.pk), "state": "ready", "error": ""},
            {"deployment_id": deployment.pk, "version_id": str(bad.pk), "state": "failed",
             "error": "_pickle.UnpicklingError: could not find MARK"},
        ],
    )  # fmt: skip
    now = time.time()
    records = []
    for minute in range(12):
        requests = 600 + 40 * minute
        hist = [0] * 20
        hist[8], hist[12], hist[19] = requests - 40, 34, 6
        records.append({"kind": "stats", "deployment_id": deployment.pk, "version_id": str(good.pk),
                        "minute": now - 60 * (11 - minute), "requests": requests, "rows": requests,
                        "errors": 3 if minute == 7 else 0, "latency_hist": hist})  # fmt: skip
    shifted = [{"age": 75.0 + i % 5, "income": 50.0 + (i % 30) - 15, "tenure": float(i % 20)} for i in range(300)]
    records.append({"kind": "sample", "deployment_id": deployment.pk, "version_id": str(good.pk), "at": now,
                    "rows": shifted})  # fmt: skip
    services.predictions_ingest(records=records)
    return deployment, good, bad


def test_empty_state_says_how_to_deploy(page, members):
    sign_in(page, "viewer-user", shots="serving-empty", path="/t/acme/deployments/")
    visit(page, "/t/acme/deployments/", "serving-empty", ready="[data-testid=deployments-empty]")
    expect(page.get_by_test_id("deployments-empty")).to_contain_text("Register a model version first")
    expect(page.locator("[data-nav=deployments]")).to_have_class("active")


def test_deployment_page_shows_routes_health_traffic_drift_and_mints_a_key(page, members, deployment):
    found, good, bad = deployment
    sign_in(page, "admin-user", shots="serving", path="/t/acme/deployments/")
    visit(page, "/t/acme/deployments/", "serving-list", ready="[data-testid=deployments-table]")
    row = page.get_by_test_id("deployment-churn-api")
    expect(row.get_by_test_id("state")).to_have_text("degraded")
    expect(row).to_contain_text("90%")
    row.get_by_role("link", name="churn-api").click()

    expect(page.get_by_test_id("deployment-state")).to_have_text("degraded")
    expect(page.get_by_test_id(f"route-{bad.pk}").get_by_test_id("load-error")).to_contain_text("UnpicklingError")
    expect(page.get_by_test_id(f"route-{good.pk}")).to_contain_text("ready")
    link = page.get_by_test_id(f"route-{good.pk}").get_by_role("link", name="churn v1")
    expect(link).to_have_attribute("href", "/t/acme/models/churn/versions/1/")  # a name, not a raw id
    expect(page.get_by_test_id("predict-snippet")).to_contain_text("/serve/acme/churn-api/predict")
    expect(page.get_by_test_id("requests")).to_have_text(str(sum(600 + 40 * m for m in range(12))))
    expect(page.get_by_test_id("errors")).to_have_text("3")
    expect(page.get_by_test_id("traffic-chart")).to_have_attribute("data-rendered", "true")
    expect(page.get_by_test_id("latency-chart")).to_have_attribute("data-rendered", "true")
    expect(page.get_by_test_id("drift-warning").first).to_contain_text("age")
    expect(page.get_by_test_id(f"drift-{good.pk}")).to_contain_text("above 0.2")
    expect(page.get_by_test_id("keys-empty")).to_be_visible()
    snap(page, "serving-deployment")

    page.get_by_test_id("key-name").fill("checkout-service")
    page.get_by_test_id("mint-key").click()
    value = page.get_by_test_id("new-key-value").input_value()
    assert value.startswith("cdk_")
    expect(page.get_by_test_id("keys")).to_contain_text("checkout-service")
    snap(page, "serving-key-minted")
    page.reload()
    expect(page.get_by_test_id("new-key")).to_have_count(0)  # shown once


def test_viewers_read_but_cannot_mint(page, members, deployment):
    sign_in(page, "viewer-user", shots="serving-viewer", path="/t/acme/deployments/churn-api/")
    expect(page.get_by_test_id("deployment-state")).to_be_visible()
    expect(page.get_by_test_id("mint-key")).to_have_count(0)
    response = page.request.post("/t/acme/deployments/churn-api/keys/", form={"name": "x"})
    assert response.status == 403


def test_another_team_gets_404(page, outsider, deployment):
    sign_in(page, "outsider", shots="serving-outsider", path="/t/rival/")
    visit(page, "/t/acme/deployments/churn-api/", "serving-outsider-404", status=404)


def test_an_admin_deploys_from_the_list_and_changes_routes(page, members, team, tmp_path, settings):
    store = tmp_path / "artifacts"
    store.mkdir()
    settings.ARTIFACT_STORE_URL = f"file://{store}"
    frame, _ = training_data()
    first = register_version(
        team, "churn", constant_model(1.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path
    )
    second = register_version(
        team, "churn", constant_model(2.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path
    )
    sign_in(page, "admin-user", shots="serving-deploy", path="/t/acme/deployments/")
    expect(page.get_by_test_id("new-deployment")).to_have_attribute("open", "")
    expect(page.get_by_test_id("deployments-empty")).to_be_hidden()  # the open form is the next step
    page.get_by_test_id("new-deployment").locator("summary").click()
    expect(page.get_by_test_id("deployments-empty")).to_be_visible()
    page.get_by_test_id("new-deployment").locator("summary").click()
    expect(page.get_by_test_id("deployments-empty")).to_be_hidden()
    snap(page, "serving-deploy-form")
    page.get_by_test_id("deployment-name").fill("churn-api")
    page.get_by_test_id("deployment-version").select_option(str(first.pk))
    page.get_by_test_id("deploy").click()
    expect(page).to_have_url(re.compile(r"/t/acme/deployments/churn-api/$"))
    expect(page.get_by_test_id(f"route-{first.pk}")).to_contain_text("100%")

    page.get_by_test_id("edit-routes").locator("summary").click()
    page.get_by_test_id(f"weight-{first.pk}").fill("3")
    page.get_by_test_id("add-version").select_option(str(second.pk))
    page.get_by_test_id("add-weight").fill("1")
    snap(page, "serving-routes-form")
    page.get_by_test_id("save-routes").click()
    expect(page.get_by_test_id(f"route-{first.pk}")).to_contain_text("75%")
    expect(page.get_by_test_id(f"route-{second.pk}")).to_contain_text("25%")

    # A bad weight is a message on the page, and nothing changes.
    page.get_by_test_id("edit-routes").locator("summary").click()
    page.get_by_test_id(f"weight-{first.pk}").fill("-2")
    page.get_by_test_id("save-routes").click()
    expect(page.locator(".messages")).to_contain_text("must be a number")
    expect(page.get_by_test_id(f"route-{first.pk}")).to_contain_text("75%")
    snap(page, "serving-routes-saved")


def test_drift_of_a_wide_model_shows_warnings_first_and_folds_the_stable_rest(page, members, team, tmp_path, settings):
    import numpy as np
    import pandas as pd

    store = tmp_path / "artifacts"
    store.mkdir()
    settings.ARTIFACT_STORE_URL = f"file://{store}"
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({f"p{i}": rng.normal(0, 1, 400) for i in range(64)})
    version = register_version(
        team, "form-reader", constant_model(1.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path
    )
    found = services.deployment_create(
        team=team, actor=SYSTEM, name="form-reader", routes=[{"version_id": str(version.pk), "weight": 1}]
    )
    rows = [{f"p{i}": float(rng.normal(3 if i in (10, 2) else 0, 1)) for i in range(64)} for _ in range(300)]
    services.predictions_ingest(
        records=[{"kind": "sample", "deployment_id": found.pk, "version_id": str(version.pk), "rows": rows}]
    )
    sign_in(page, "viewer-user", shots="serving-drift", path="/t/acme/deployments/form-reader/")
    table = page.get_by_test_id(f"drift-{version.pk}")
    expect(page.get_by_test_id("drift-warning")).to_contain_text("drift: p")
    names = table.locator("tbody tr td:first-child").all_inner_texts()
    assert names[:2] in (["p2", "p10"], ["p10", "p2"]) and len(names) == 7, names  # 2 warnings + the top 5
    more = page.get_by_test_id(f"drift-more-{version.pk}")
    expect(more.locator("summary")).to_contain_text("57 more features, all stable")
    expect(more.locator("tbody tr").first).to_be_hidden()
    snap(page, "serving-drift-folded")
    more.locator("summary").click()
    expect(more.locator("tbody tr")).to_have_count(57)
    expect(more.locator("tbody tr").first).to_be_visible()
    snap(page, "serving-drift-expanded")
