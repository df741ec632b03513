"""The data page and the data set page in a real browser: empty states, an admin saving a secret
(never shown again) and a connection to the real PostgreSQL, testing it, data sets with the runs
that read them, a dry run of the garbage collector, and what a viewer sees."""

from __future__ import annotations

import os

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Page, expect

from cellar.artifacts import blob_key, store_from_url
from cellar_server.data import datasets, services
from cellar_server.teams.actors import Actor
from cellar_server.tracking.models import Experiment, Run
from tests.e2e.conftest import sign_in, snap, visit

pytestmark = pytest.mark.e2e
VALUE = "pa55-word-never-shown-again"


@pytest.fixture(autouse=True)
def secrets_key(settings):
    settings.CELLAR_SECRETS_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"


def seed_datasets(team):
    exp = Experiment.all_teams.create(team=team, number=1, name="churn", creation_time=0, last_update_time=0)
    runs = [
        Run.all_teams.create(team=team, run_uuid=c * 32, experiment=exp, start_time=0, name=f"train-{i}")
        for i, c in enumerate("abc")
    ]
    body = {
        "name": "churn.csv",
        "uri": "s3://lake/raw/churn.csv",
        "kind": "s3",
        "size": 48213,
        "schema": {"columns": [{"name": "id", "type": "int64"}, {"name": "churned", "type": "int64"}]},
        "profile": {"rows": 1200, "columns": 2},
    }
    first = datasets.dataset_record(
        team=team, data={**body, "digest": "sha256:" + "1" * 64}, run=runs[0], context="training"
    )
    datasets.dataset_record(team=team, data={**body, "digest": "sha256:" + "1" * 64}, run=runs[1], context="training")
    datasets.dataset_record(
        team=team, data={**body, "digest": "sha256:" + "2" * 64, "snapshot": "3" * 64}, run=runs[2], context="training"
    )
    return first


def test_an_admin_saves_a_secret_and_a_connection_and_tests_it(page: Page, team, members, settings, artifacts):
    sign_in(page, "admin-user", shots="data-admin")
    visit(page, "/t/acme/data/", "data-empty", ready="[data-testid=connections-empty]")
    expect(page.get_by_test_id("secrets-empty")).to_be_visible()
    expect(page.get_by_test_id("datasets-empty")).to_contain_text("cellar.dataset")

    form = page.get_by_test_id("secret-form")
    form.get_by_label("Name").fill("dwh-password")
    form.get_by_label("Value").fill(VALUE)
    form.get_by_label("Description").fill("warehouse reader")
    form.get_by_role("button", name="Save secret").click()
    expect(page.get_by_test_id("secret-dwh-password")).to_contain_text("warehouse reader")
    assert VALUE not in page.content()

    db = settings.DATABASES["default"]
    url = f"postgresql+psycopg2://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    form = page.get_by_test_id("connection-form")
    form.get_by_label("Name").fill("warehouse")
    form.locator("input[name=sql-url]").fill(url)
    form.locator("input[name=sql-password_secret]").fill("dwh-password")
    form.get_by_role("button", name="Add connection").click()
    row = page.get_by_test_id("connection-warehouse")
    expect(row).to_contain_text("not tested yet")
    page.get_by_test_id("test-warehouse").click()
    expect(page.get_by_test_id("connection-warehouse").get_by_test_id("test-result")).to_contain_text(
        "Connected to postgresql"
    )
    snap(page, "data-admin-connection-tested")
    assert VALUE not in page.content()


def test_data_sets_with_their_runs_and_the_data_set_page(page: Page, team, members, artifacts):
    first = seed_datasets(team)
    sign_in(page, "editor-user", shots="data-editor")
    visit(page, "/t/acme/data/", "data-with-datasets", ready="[data-testid=datasets]")
    row = page.get_by_test_id(f"dataset-{first.pk}")
    expect(row).to_contain_text("train-0")
    expect(row).to_contain_text("train-1")
    row.get_by_role("link", name="churn.csv").click()
    expect(page.get_by_test_id("dataset-name")).to_have_text("churn.csv")
    expect(page.get_by_test_id("dataset-runs")).to_contain_text("train-0")
    expect(page.get_by_test_id("dataset-versions").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("dataset-schema")).to_contain_text("churned")
    snap(page, "data-dataset-page")
    page.get_by_test_id("dataset-runs").get_by_role("link", name="train-1").click()
    expect(page).to_have_url(f"{page.url.split('/t/')[0]}/t/acme/runs/{'b' * 32}/")


def test_run_page_lists_its_data_sets_and_compare_says_the_input_changed(page: Page, team, members, artifacts):
    seed_datasets(team)
    sign_in(page, "viewer-user", shots="data-runs")
    visit(page, f"/t/acme/runs/{'a' * 32}/", "data-run-page", ready="[data-testid=run-datasets]")
    expect(page.get_by_test_id("run-datasets")).to_contain_text("churn.csv")
    expect(page.get_by_test_id("run-datasets")).to_contain_text("training")
    visit(
        page, f"/t/acme/compare/?runs={'a' * 32},{'b' * 32}", "data-compare-same", ready="[data-testid=compare-inputs]"
    )
    expect(page.get_by_test_id("input-changed")).to_have_count(0)
    visit(
        page,
        f"/t/acme/compare/?runs={'a' * 32},{'c' * 32}",
        "data-compare-changed",
        ready="[data-testid=compare-inputs]",
    )
    expect(page.get_by_test_id("input-changed")).to_be_visible()
    expect(page.locator("[data-row='Data sets:churn.csv'] td.diff")).to_have_count(2)


def test_a_dry_run_reports_what_it_would_free(page: Page, team, members, artifacts, settings):
    store = store_from_url(settings.ARTIFACT_STORE_URL)
    sha = store.put_blob(team.slug, b"garbage")
    os.utime(store._path(blob_key(team.slug, sha)), (1, 1))  # written long ago, referenced by nothing
    sign_in(page, "admin-user", shots="data-gc")
    visit(page, "/t/acme/data/", "data-gc-before", ready="[data-testid=retention]")
    expect(page.get_by_test_id("storage-used")).to_contain_text("not measured yet")
    page.get_by_test_id("gc-dry-run").click()
    expect(page.locator(".msg.success")).to_contain_text("would free 1 blobs (7 bytes)")
    expect(page.get_by_test_id("sweeps")).to_contain_text("dry run")
    expect(page.get_by_test_id("storage-used")).to_contain_text("7")
    snap(page, "data-gc-dry-run")
    assert store.exists(blob_key(team.slug, sha))
    visit(page, "/t/acme/admin/quotas/", "data-admin-console-storage", ready="[data-testid=team-storage]")
    expect(page.get_by_test_id("team-storage")).to_contain_text("in 1 blob")


def test_a_viewer_sees_names_only_and_no_forms(page: Page, team, members, artifacts):
    services.secret_create(actor=Actor(user=members["admin"]), team=team, name="api-key", value=VALUE)
    seed_datasets(team)
    sign_in(page, "viewer-user", shots="data-viewer")
    visit(page, "/t/acme/data/", "data-viewer", ready="[data-testid=secrets]")
    expect(page.get_by_test_id("secret-api-key")).to_be_visible()
    expect(page.get_by_test_id("secret-form")).to_have_count(0)
    expect(page.get_by_test_id("connection-form")).to_have_count(0)
    expect(page.get_by_test_id("gc-dry-run")).to_have_count(0)
    assert VALUE not in page.content()
