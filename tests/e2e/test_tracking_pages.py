"""The tracking dashboards in a real browser: filter, sort, pick columns, select, compare, charts, artifacts."""

from __future__ import annotations

import math
import re
import struct
import zlib

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import sign_in, snap, visit
from tests.factories import TeamFactory, UserFactory, add_member
from tests.tracking.conftest import TrackingBuilder

pytestmark = pytest.mark.e2e

OPTIMIZERS = ["adam", "sgd", "adamw"]


def png(width: int = 96, height: int = 48) -> bytes:
    """A real PNG (a purple gradient), so the browser has something to decode."""
    raw = b"".join(b"\x00" + b"".join(bytes((91 + x, 61, 245 - x)) for x in range(width)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40">'
    b'<rect width="80" height="40" fill="#0ca678"/></svg>'
)


def accuracy(i: int, step: int, speed: int) -> float:
    return 0.95 - 0.5 * math.exp(-step / speed) - 0.01 * (i % 3)


@pytest.fixture
def lab(team, members, settings, tmp_path):
    """An experiment of 12 runs with histories, and one run with artifacts of each previewable kind."""
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"
    builder = TrackingBuilder(team)
    experiment = builder.experiment("churn-model")
    made, final_accuracy = [], []
    for i in range(12):
        lr = [0.001, 0.003, 0.01, 0.03][i % 4]
        speed = 20 + 15 * i
        made.append(
            builder.run(
                experiment,
                name=f"trial-{i:02d}",
                params={"lr": lr, "optimizer": OPTIMIZERS[i % 3], "depth": 3 + i % 5},
                tags={"team": "growth" if i % 2 else "core"},
                history={
                    "loss": [(s, 1.5 * math.exp(-s / speed) + 0.02 * math.sin(s) + 0.05) for s in range(0, 400, 4)],
                    "accuracy": [(s, accuracy(i, s, speed)) for s in range(0, 400, 4)],
                },
            )
        )
        final_accuracy.append(accuracy(i, 396, speed))
    first = made[0]
    builder.artifact(first, "plots/loss.png", png())
    builder.artifact(first, "plots/shape.svg", SVG)
    builder.artifact(
        first, "predictions.csv", b"id,label,score\n" + b"".join(b"%d,%d,0.%d\n" % (i, i % 2, i) for i in range(80))
    )
    builder.artifact(
        first, "metrics.json", b'{"auc": 0.91, "thresholds": [0.3, 0.5, 0.7], "by_segment": {"new": 0.88}}'
    )
    builder.artifact(first, "notes.txt", b"Trained on the March snapshot.\nEarly stopping at patience 5.\n")
    builder.artifact(
        first, "model/MLmodel", b"artifact_path: model\nflavors:\n  sklearn:\n    pickled_model: model.pkl\n"
    )
    return {"experiment": experiment, "runs": made, "final_accuracy": final_accuracy}


def rows(page: Page):
    return page.get_by_test_id("runs-table").locator("tbody tr")


def column_values(page: Page, key: str) -> list[str]:
    header_index = page.locator("[data-testid=runs-table] thead th").evaluate_all(
        f"(ths) => ths.findIndex((th) => th.dataset.col === '{key}')"
    )
    return rows(page).locator(f"td:nth-child({header_index + 1})").all_text_contents()


def wait_for_charts(page: Page, count: int) -> None:
    """Bring each chart into view (they load when seen) and wait for Plotly's SVG."""
    slots = page.locator(".chart-slot")
    for i in range(count):
        slots.nth(i).scroll_into_view_if_needed()
        # Generous: on a loaded 2-core machine Plotly's first draw can take seconds.
        expect(slots.nth(i).locator(".tchart[data-rendered=true] svg.main-svg").first).to_be_attached(timeout=30_000)
    page.evaluate("window.scrollTo(0, 0)")


def test_filter_sort_pick_columns_select_and_compare(page, live_server, lab):
    experiment = lab["experiment"]
    sign_in(page, "viewer-user", shots="tracking-01")

    visit(page, "/t/acme/experiments/", "tracking-02-experiments", ready="[data-testid=experiment-table]")
    expect(page.locator("[data-experiment] td").nth(2)).to_have_text("12")
    page.get_by_role("link", name="churn-model").click()
    expect(rows(page)).to_have_count(12)
    snap(page, "tracking-03-runs-table")

    # Filter: htmx swaps the table and pushes the URL.
    filter_box = page.get_by_label("Filter")
    filter_box.fill("params.optimizer = 'adam'")
    filter_box.press("Enter")
    expect(rows(page)).to_have_count(4)
    expect(page).to_have_url(re.compile(r"filter=params.optimizer"))
    expect(page.get_by_test_id("run-count")).to_contain_text("of 4 runs matching")

    # A syntax error shows next to the box, and the table says how to recover.
    filter_box.fill("metrics.accuracy >> 0.5")
    filter_box.press("Enter")
    expect(page.get_by_test_id("filter-error")).to_contain_text("Invalid comparator '>>'")
    snap(page, "tracking-04-filter-error")
    filter_box.fill("metrics.accuracy > 0.92")
    filter_box.press("Enter")
    expect(page.get_by_test_id("filter-error")).to_be_hidden()
    matching = sum(a > 0.92 for a in lab["final_accuracy"])
    assert 3 < matching < 12
    expect(rows(page)).to_have_count(matching)

    # Sorting by clicking a header: descending first for metrics, then ascending.
    page.locator("th[data-col='metric.accuracy'] a").click()
    expect(page).to_have_url(re.compile(r"order=metrics.*accuracy.*DESC"))
    expect(page.locator("th[data-col='metric.accuracy']")).to_have_attribute("aria-sort", "descending")
    values = [float(v) for v in column_values(page, "metric.accuracy")]
    assert values == sorted(values, reverse=True) and len(values) == matching
    page.locator("th[data-col='metric.accuracy'] a").click()
    expect(page.locator("th[data-col='metric.accuracy']")).to_have_attribute("aria-sort", "ascending")
    values = [float(v) for v in column_values(page, "metric.accuracy")]
    assert values == sorted(values)
    # The back button walks the table's history (htmx pushed each state), then forward again.
    page.go_back()
    expect(page.locator("th[data-col='metric.accuracy']")).to_have_attribute("aria-sort", "descending")
    page.go_forward()
    expect(page.locator("th[data-col='metric.accuracy']")).to_have_attribute("aria-sort", "ascending")

    # The column picker loads the experiment's keys when opened; choices go into the URL.
    page.get_by_test_id("column-picker").locator("summary").click()
    picker = page.get_by_test_id("column-picker")
    expect(picker.get_by_label("team")).to_be_visible()
    snap(page, "tracking-05-column-picker")
    picker.get_by_label("team").check()
    picker.get_by_label("depth").uncheck()
    picker.get_by_role("button", name="Apply columns").click()
    expect(page.locator("th[data-col='tag.team']")).to_be_visible()
    expect(page.locator("th[data-col='param.depth']")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"col=tags.team"))
    page.get_by_test_id("column-picker").locator("summary").click()  # close it
    # The sort survived the filter form's resubmission.
    expect(page.locator("th[data-col='metric.accuracy']")).to_have_attribute("aria-sort", "ascending")

    # Select three runs and compare them.
    for box in rows(page).locator("input[name=run]").all()[:3]:
        box.check()
    expect(page.locator("[data-selection-count]")).to_have_text("3 runs selected")
    snap(page, "tracking-06-runs-selected")
    page.get_by_test_id("compare-button").click()
    expect(page).to_have_url(re.compile(r"/t/acme/compare/\?runs=\w+%2C\w+%2C\w+$"))
    expect(page.get_by_test_id("run-legend").locator("li")).to_have_count(3)
    wait_for_charts(page, 2)
    expect(
        page.locator("#parallel-chart[data-rendered=true] .parcoords, #parallel-chart[data-rendered=true] svg").first
    ).to_be_attached()
    expect(page.locator("#scatter-chart[data-rendered=true] svg.main-svg").first).to_be_attached(timeout=30_000)
    assert page.locator(".chart-slot[data-key=loss] .scatterlayer .trace").count() == 3
    diff = page.get_by_test_id("diff-table")
    expect(diff.locator("tr[data-row='Parameters:lr'] td")).to_have_count(3)
    expect(diff.locator("tr.differs").first).to_be_visible()
    snap(page, "tracking-07-compare")

    # The scatter's axes are selects; the choice lands in the URL.
    page.locator("[data-plot-control=x]").select_option("metrics.loss")
    expect(page).to_have_url(re.compile(r"x=metrics.loss"))
    expect(page.locator("#scatter-chart .xtitle")).to_have_text("loss")
    page.get_by_label("Only rows that differ").check()
    expect(diff.locator("tr.same").first).to_be_hidden()
    snap(page, "tracking-08-compare-differences")

    # Back on the table, the selection is still there.
    page.go_back()
    expect(page.locator("[data-selection-count]")).to_have_text("3 runs selected")
    assert experiment.number >= 1


def test_run_page_charts_and_artifact_previews(page, live_server, lab):
    run = lab["runs"][0]
    sign_in(page, "viewer-user", shots="tracking-run")
    visit(page, f"/t/acme/runs/{run.run_uuid}/", "tracking-10-run", ready="[data-testid=run-info]")
    expect(page.get_by_test_id("run-params")).to_contain_text("optimizer")
    wait_for_charts(page, 2)
    snap(page, "tracking-11-run-charts")

    browser = page.get_by_test_id("artifacts")
    browser.scroll_into_view_if_needed()
    browser.locator("[data-entry=plots]").click()
    expect(page).to_have_url(re.compile(r"\?path=plots$"))
    browser.locator("[data-entry='loss.png']").click()
    image = browser.locator("img.preview-image")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('img.preview-image').naturalWidth === 96")
    snap(page, "tracking-12-artifact-image")
    browser.locator("[data-entry='shape.svg']").click()
    page.wait_for_function("document.querySelector('img.preview-image')?.naturalWidth === 80")

    browser.get_by_role("link", name="artifacts", exact=True).click()
    browser.locator("[data-entry='predictions.csv']").click()
    table = browser.locator("table.csv-preview")
    expect(table.locator("thead th")).to_have_text(["id", "label", "score"])
    expect(table.locator("tbody tr")).to_have_count(50)
    snap(page, "tracking-13-artifact-csv")
    browser.locator("[data-entry='metrics.json']").click()
    expect(browser.locator("pre.file-text")).to_contain_text('"thresholds": [\n    0.3,')
    snap(page, "tracking-14-artifact-json")
    browser.locator("[data-entry=model]").click()
    browser.locator("[data-entry=MLmodel]").click()
    expect(browser.locator("pre.file-text")).to_contain_text("pickled_model: model.pkl")

    # The browser history walks back through the folders; a reload shows the same place in full.
    page.reload()
    expect(page.get_by_test_id("artifact-preview")).to_contain_text("MLmodel")


def test_empty_states_and_the_compare_limit(page, live_server, lab):
    newcomer = UserFactory(username="newcomer")
    add_member(TeamFactory(slug="fresh", name="Fresh"), newcomer, "editor")
    sign_in(page, "newcomer", shots="tracking-empty")
    visit(page, "/t/fresh/experiments/", "tracking-20-experiments-empty", ready="[data-testid=getting-started]")
    expect(page.get_by_test_id("getting-started")).to_contain_text("MLFLOW_TRACKING_URI=http://")
    expect(page.get_by_test_id("getting-started")).to_contain_text("/t/fresh/mlflow")
    expect(page.get_by_test_id("getting-started")).to_contain_text("MLFLOW_TRACKING_TOKEN")
    visit(page, "/t/fresh/compare/", "tracking-21-compare-empty", ready="[data-testid=compare-empty]")
    too_many = ",".join(f"{i:032x}" for i in range(101))
    visit(page, f"/t/fresh/compare/?runs={too_many}", "tracking-22-compare-too-many", status=400)
    expect(page.get_by_test_id("compare-too-many")).to_contain_text("at most 100")


def test_a_hundred_runs_page_and_compare(page, live_server, team, members):
    builder = TrackingBuilder(team)
    experiment = builder.experiment("sweep")
    made = builder.bulk_runs(
        experiment,
        100,
        params=lambda i: {
            "lr": round(0.0005 * (i + 1), 4),
            "batch": [32, 64, 128][i % 3],
            "arch": ["cnn", "vit"][i % 2],
        },
        metrics=lambda i: {"val_acc": 0.7 + 0.25 * math.sin(i / 30), "val_loss": 1 / (i + 2)},
    )
    for i, run in enumerate(made):
        builder.bulk_history(run, "val_loss", 2000, lambda s, i=i: 2.0 * math.exp(-s / (200 + 10 * i)) + 0.1)
        builder.bulk_history(run, "val_acc", 2000, lambda s, i=i: 0.95 - 0.5 * math.exp(-s / (150 + 8 * i)))
    sign_in(page, "viewer-user", shots="tracking-100")
    page.goto(f"/t/acme/experiments/{experiment.number}/")
    expect(rows(page)).to_have_count(50)
    pager = page.get_by_test_id("runs-pager")
    pager.get_by_role("link", name="2", exact=True).click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.get_by_test_id("run-count")).to_contain_text("51–100 of 100 runs")
    expect(rows(page).first).to_contain_text("bulk-00049")
    snap(page, "tracking-30-runs-page-2")

    visit(
        page,
        "/t/acme/compare/?runs=" + ",".join(r.run_uuid for r in made),
        "tracking-31-compare-100",
        ready="[data-testid=diff-table]",
    )
    wait_for_charts(page, 2)
    assert page.locator(".chart-slot[data-key=val_loss] .scatterlayer .trace").count() == 100
    expect(page.locator("#parallel-chart[data-rendered=true]")).to_be_attached()
    snap(page, "tracking-32-compare-100-charts")


def test_compare_draws_a_single_point_and_legible_parameter_axes(page, live_server, team, members):
    """A score logged once (twice, at step 0) is a visible point, not an empty chart; long parameter
    names on the parallel plot are shortened and slanted, not stacked on each other, and a parameter
    every run shares (lr) gets no axis."""
    builder = TrackingBuilder(team)
    experiment = builder.experiment("pipeline:form-reader")
    params = {
        "best_setting": "{'C': 1.0}",
        "extra_features": "false",
        "settings_per_family": 2,
        "model_name": "form-reader",
        "candidate_families": '["logistic"]',
        "test_size": 0.3,
        "seed": 7,
        "alias": "champion",
    }
    made = [
        builder.run(
            experiment,
            name=f"form-reader #{i + 1}",
            params={k: f"{v}-{i}" if i and k != "test_size" else v for k, v in params.items()} | {"lr": 0.1},
            history={"accuracy": [(0, 0.97), (0, 0.97)], "candidate_accuracy": [(0, 0.9705 + i / 1000), (1, 0.972)]},
        )
        for i in range(2)
    ]
    sign_in(page, "viewer-user", shots="tracking-point")
    visit(page, "/t/acme/compare/?runs=" + ",".join(r.run_uuid for r in made), "tracking-40-compare-point")
    wait_for_charts(page, 2)
    expect(page.locator(".chart-slot[data-key=accuracy] .scatterlayer .point")).to_have_count(2)
    expect(page.locator(".chart-slot[data-key=candidate_accuracy] .scatterlayer .point")).to_have_count(4)
    parallel = page.locator("#parallel-chart[data-rendered=true]")
    expect(parallel).to_be_attached()
    labels = parallel.locator("text.axis-title")
    expect(labels).to_have_count(8)  # the seven parameters that differ, and the metric
    names = labels.all_text_contents()
    assert "lr" not in names
    assert "candidate_fam…" in names and max(len(n) for n in names) <= 14, names
    assert "rotate(-30" in (labels.first.get_attribute("transform") or ""), "the names are slanted"
    parallel.scroll_into_view_if_needed()
    snap(page, "tracking-41-compare-point")
