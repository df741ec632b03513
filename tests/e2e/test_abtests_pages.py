"""The A/B-test pages in a real browser: the empty list with its create form, a test whose
challenger clearly wins (decision "ready", forest plot and cumulative-lift chart drawn by
Plotly, Promote winner moving the deployment), a test with a sample-ratio mismatch (red
banner), and a viewer who sees results but no buttons."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from playwright.sync_api import expect

from cellar_server.abtests import aggregates, ingest
from cellar_server.abtests.services import abtest_create
from cellar_server.registry import services as registry
from cellar_server.registry.selectors import model_for_name
from cellar_server.serving.models import Route
from cellar_server.serving.services import deployment_create
from cellar_server.teams.actors import Actor
from tests.e2e.conftest import sign_in, snap, visit
from tests.serving.conftest import constant_model, register_version, training_data

pytestmark = pytest.mark.e2e


@pytest.fixture
def setup(team, members, tmp_path, settings):
    store = tmp_path / "artifacts"
    store.mkdir()
    settings.ARTIFACT_STORE_URL = f"file://{store}"
    frame, _ = training_data()
    admin = Actor(user=members["admin"])
    v1 = register_version(team, "churn", constant_model(1.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path)
    v2 = register_version(team, "churn", constant_model(2.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path)
    registry.model_alias_set(
        team=team, actor=admin, model=model_for_name(team=team, name="churn"), alias="champion", version=1
    )
    deployment_create(team=team, actor=admin, name="churn-api", routes=[{"version_id": str(v1.pk), "weight": 1}])
    return {"admin": admin, "v1": str(v1.pk), "v2": str(v2.pk)}


def _test_with_data(team, setup, *, counts, rates, guardrail=False, minutes=90):
    test = abtest_create(
        team=team,
        actor=setup["admin"],
        deployment_name="churn-api",
        name="churn v2 vs v1",
        variants=[{"version_id": setup["v1"], "weight": 0.5}, {"version_id": setup["v2"], "weight": 0.5}],
        metrics=[
            {"name": "converted", "kind": "proportion", "role": "primary"},
            {"name": "revenue", "kind": "mean", "role": "secondary"},
            {"name": "latency_ms", "kind": "mean", "role": "guardrail", "higher_is_better": False, "cuped": False},
        ],
        sequential_n_star=2000,
    )
    rng = np.random.default_rng(2)
    start = datetime.now(UTC) - timedelta(minutes=90)
    if not minutes:  # every exposure in one minute: the timeline has a single bucket
        start = start.replace(second=0, microsecond=0)
    units = [
        (f"u{arm}-{i}", arm, start + timedelta(minutes=int(i * minutes / counts[arm])))
        for arm in (0, 1)
        for i in range(counts[arm])
    ]
    ingest.exposures_ingest(
        records=[{"test_id": test.pk, "phase": 1, "unit_id": u, "arm": a, "at": t.isoformat()} for u, a, t in units]
    )
    events = []
    for u, arm, t in units:
        if rng.random() < rates[arm]:
            events.append(
                {
                    "id": f"{u}-c",
                    "unit_id": u,
                    "name": "converted",
                    "value": 1,
                    "at": (t + timedelta(minutes=5)).isoformat(),
                }
            )
            events.append(
                {
                    "id": f"{u}-r",
                    "unit_id": u,
                    "name": "revenue",
                    "value": float(rng.lognormal(3, 0.5)),
                    "at": (t + timedelta(minutes=5)).isoformat(),
                }
            )
        events.append(
            {
                "id": f"{u}-l",
                "unit_id": u,
                "name": "latency_ms",
                "value": float(rng.normal(40, 5)),
                "at": (t + timedelta(seconds=1)).isoformat(),
            }
        )
    for i in range(0, len(events), 5000):
        ingest.events_ingest(test=test, events=events[i : i + 5000])
    aggregates.aggregates_refresh(test=test)
    return test


def expect_ended(page, status: str) -> None:
    """A finished test: its status, the outcome card (who, when) and no buttons."""
    expect(page.get_by_test_id("test-status")).to_have_text(status)
    expect(page.get_by_test_id("decision-state")).to_have_text(status.capitalize())
    expect(page.get_by_test_id("outcome-by")).to_contain_text(f"{status.capitalize()} by admin-user on ")
    for button in ("promote", "stop", "extend"):
        expect(page.get_by_test_id(button)).to_have_count(0)


def test_empty_list_and_create_form(page, members, setup):
    sign_in(page, "admin-user", shots="abtests-admin", path="/t/acme/ab-tests/")
    visit(page, "/t/acme/ab-tests/", "abtests-empty", ready="[data-testid='abtests-empty']")
    expect(page.get_by_test_id("create-form")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("churn v2 vs v1")
    page.get_by_label("Challenger version ids").fill(setup["v2"])
    page.get_by_label("Weights").fill("0.5, 0.6")
    page.get_by_label("Primary metric (event name)").fill("converted")
    page.get_by_test_id("start-test").click()
    expect(page.locator(".messages")).to_contain_text("must sum to 1")
    snap(page, "abtests-create-error")
    page.get_by_label("Weights").fill("0.5, 0.5")
    page.get_by_test_id("start-test").click()
    expect(page.get_by_test_id("decision-state")).to_have_text("Collecting data")
    expect(page.get_by_test_id("metrics-empty")).to_be_visible()
    snap(page, "abtests-new-test")


def test_ready_results_page_and_promote(page, team, members, setup):
    test = _test_with_data(team, setup, counts=(2500, 2500), rates=(0.10, 0.17))
    sign_in(page, "admin-user", shots="abtests-ready", path=f"/t/acme/ab-tests/{test.pk}/")
    visit(
        page, f"/t/acme/ab-tests/{test.pk}/", "abtests-ready", ready="[data-testid='forest-plot'][data-rendered='true']"
    )
    expect(page.get_by_test_id("decision-state")).to_have_text("Ready to promote")
    expect(page.get_by_test_id("timeline-chart")).to_have_attribute("data-rendered", "true")
    expect(page.get_by_test_id("units-control")).to_have_text("2500")
    expect(page.get_by_test_id("method")).to_contain_text("always-valid")
    expect(page.get_by_test_id("srm-banner")).to_have_count(0)
    expect(page.get_by_test_id("promote-reason")).to_have_count(0)  # ready: no reason needed
    expect(page.get_by_test_id("decision")).to_contain_text("'b · churn v2' beats control")
    expect(page.get_by_test_id("arm-version-b")).to_have_text("churn v2")
    expect(page.get_by_test_id("arm-version-b")).to_have_attribute("href", "/t/acme/models/churn/versions/2/")
    expect(page.get_by_test_id("row-converted-b")).to_contain_text("b · churn v2")
    for width in (1280, 1400):  # the per-metric table fits: no horizontal scrolling, last column visible
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.locator(".table-scroll").evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 0, f"metrics table overflows by {overflow}px at {width}px"
        expect(page.get_by_text("P(beats control)")).to_be_in_viewport()
    snap(page, "abtests-ready-full")
    page.get_by_test_id("promote").click()
    expect(page.locator(".messages")).to_contain_text("Winner promoted")
    expect_ended(page, "promoted")
    expect(page.get_by_test_id("outcome")).to_have_text("Promoted: b (churn v2) is the champion and serves 100%")
    assert [(r.version_id, r.weight) for r in Route.all_teams.filter(team=team)] == [(setup["v2"], 1.0)]
    snap(page, "abtests-promoted")


def test_a_single_time_bucket_reads_as_an_hour_on_the_lift_chart(page, team, members, setup):
    """All exposures in one minute: the cumulative-lift chart shows a point with its interval on an axis of
    hours and minutes, not ticks like 21:23:59.999."""
    test = _test_with_data(team, setup, counts=(1500, 1500), rates=(0.10, 0.17), minutes=0)
    sign_in(page, "viewer-user", shots="abtests-bucket", path=f"/t/acme/ab-tests/{test.pk}/")
    chart = page.get_by_test_id("timeline-chart")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart.locator(".scatterlayer .point")).to_have_count(1)
    ticks = chart.locator(".xtick text").all_text_contents()
    assert ticks and all(re.match(r"^\d\d:\d\d", t) for t in ticks), ticks
    assert not any("." in t for t in ticks), ticks
    chart.scroll_into_view_if_needed()
    snap(page, "abtests-single-bucket")


def test_srm_banner_and_viewer_without_buttons(page, team, members, setup):
    test = _test_with_data(team, setup, counts=(2500, 2150), rates=(0.10, 0.10))
    sign_in(page, "viewer-user", shots="abtests-viewer", path=f"/t/acme/ab-tests/{test.pk}/")
    visit(
        page, f"/t/acme/ab-tests/{test.pk}/", "abtests-srm", ready="[data-testid='forest-plot'][data-rendered='true']"
    )
    expect(page.get_by_test_id("srm-banner")).to_be_visible()
    expect(page.get_by_test_id("decision-state")).to_have_text("Sample ratio mismatch")
    expect(page.get_by_test_id("promote")).to_have_count(0)
    visit(page, "/t/acme/ab-tests/", "abtests-list", ready="[data-testid='abtests-table']")
    expect(page.get_by_test_id(f"abtest-{test.pk}")).to_contain_text("churn v2 vs v1")


def test_stopping_shows_who_stopped_it_and_the_last_decision(page, team, members, setup):
    test = _test_with_data(team, setup, counts=(800, 800), rates=(0.10, 0.10))
    sign_in(page, "admin-user", shots="abtests-stop", path=f"/t/acme/ab-tests/{test.pk}/")
    expect(page.get_by_test_id("decision-state")).to_have_text("No significant difference yet")
    page.get_by_test_id("stop-reason").fill("the launch date moved")
    page.get_by_test_id("stop").click()
    expect_ended(page, "stopped")
    expect(page.get_by_test_id("outcome-reason")).to_have_text("the launch date moved")
    expect(page.get_by_test_id("outcome-decision")).to_contain_text("Last decision: No significant difference yet")
    snap(page, "abtests-stopped")
