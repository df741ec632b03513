"""The compute page in a real browser: pools with demand, workers and utilization, the scaling
chart (Plotly), the team's usage against its quota, the GPU fallback marked on the tasks it
ran, and the empty state that says how to start workers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from cellar_server.compute import services
from cellar_server.compute.models import Pool, PoolSample
from cellar_server.pipelines.models import TASK_RUNNING, TaskAttempt
from tests.e2e.conftest import sign_in, snap, visit
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, version_for

pytestmark = pytest.mark.e2e


def report(name: str, pool: str, **fields) -> None:
    services.worker_heartbeat_record(
        report={"worker": name, "pool": pool, "host": "box", "pid": 100, "concurrency": 1, **fields}
    )


@pytest.fixture(autouse=True)
def default_pools(db):
    # live_server tests are transactional: an earlier one flushed the migration's pools.
    return services.pools_ensure_defaults()


@pytest.fixture
def busy_pools(team, settings):
    settings.CELLAR_POOLS = ""
    settings.CELLAR_GPU_FALLBACK = True
    Pool.objects.filter(name="cpu").update(min_workers=0, max_workers=4)
    run = make_run(version_for(team))
    add_tasks(run, "square", 30)
    for task in add_tasks(run, "cube", 3):
        task.state = TASK_RUNNING
        task.save(update_fields=["state"])
    now = timezone.now()
    # Twenty minutes of history: idle, a fan-out arrives, the pool scales up, then drains.
    samples = []
    for minute in range(20):
        demand = 0 if minute < 4 else max(0, 120 - 8 * (minute - 4))
        workers = 0 if minute < 4 else min(4, minute - 3) if demand else 1
        samples.append(
            PoolSample(pool="cpu", at=now - timedelta(minutes=20 - minute), workers=workers, demand=demand,
                       running=min(demand, workers))
        )  # fmt: skip
    PoolSample.objects.bulk_create(samples)
    report("cpu@box:101", "cpu", current_tasks=2, cpu_percent=96.0, memory_percent=12.5, memory_rss=2**30)
    report("cpu@box:102", "cpu", current_tasks=1, cpu_percent=88.0, memory_percent=10.0, memory_rss=2**29)
    report("gpu@box:201", "gpu", current_tasks=1, gpu_fallback=True, cpu_percent=100.0, memory_percent=20.0)
    train = add_tasks(run, "train", 1, pool="gpu")[0]
    TaskAttempt.all_teams.create(
        team=team, task=train, number=1, lease="l", worker="gpu@box:201", state="succeeded",
        started_at=now - timedelta(hours=2), ended_at=now - timedelta(minutes=30),
    )  # fmt: skip
    return run


def test_the_compute_page_shows_pools_workers_scaling_and_usage(page: Page, team, members, busy_pools):
    sign_in(page, "viewer-user", shots="compute-viewer")
    visit(page, "/t/acme/compute/", "compute-page", ready="[data-testid=pool-cpu]")
    cpu = page.get_by_test_id("pool-cpu")
    expect(cpu.get_by_test_id("demand")).to_have_text("33")
    expect(cpu.get_by_test_id("running")).to_have_text("3")
    expect(cpu.get_by_test_id("workers")).to_have_text("2")
    expect(cpu.get_by_test_id("workers-cpu").locator("tbody tr")).to_have_count(2)
    expect(cpu.get_by_test_id("workers-cpu")).to_contain_text("96%")
    # The Plotly chart of workers vs demand drew.
    expect(page.get_by_test_id("chart-cpu")).to_have_attribute("data-rendered", "true", timeout=30_000)
    expect(page.get_by_test_id("chart-cpu").locator(".scatterlayer .trace")).to_have_count(3)
    # The gpu pool runs on the CPU under the fallback, and its task says so.
    gpu = page.get_by_test_id("pool-gpu")
    expect(gpu.get_by_test_id("pool-fallback")).to_be_visible()
    expect(page.get_by_test_id("fallback-banner")).to_be_visible()
    expect(page.get_by_test_id("fallback-tasks")).to_contain_text("ran on CPU (GPU fallback)")
    expect(page.get_by_test_id("fallback-tasks")).to_contain_text("train")
    # Usage: 1.5 GPU-hours of the team's 100.
    expect(page.get_by_test_id("gpu-hours")).to_have_text("1.50")
    expect(page.get_by_test_id("cpu-hours")).to_have_text("0.00")
    expect(page.locator("nav.sidebar a[data-nav=compute]")).to_have_class("active")
    snap(page, "compute-page")


def test_with_no_worker_the_page_says_how_to_start_them(page: Page, team, members, settings):
    settings.CELLAR_POOLS = ""
    settings.CELLAR_GPU_FALLBACK = False
    sign_in(page, "viewer-user", shots="compute-empty")
    visit(page, "/t/acme/compute/", "compute-page-empty")
    page.get_by_test_id("no-workers").wait_for()
    expect(page.get_by_test_id("no-workers")).to_contain_text("cellar-worker supervise")
    expect(page.get_by_test_id("chart-empty-cpu")).to_be_visible()
    expect(page.get_by_test_id("fallback-banner")).to_have_count(0)


def test_another_team_sees_no_page(page: Page, team, outsider):
    sign_in(page, "outsider", shots="compute-outsider")
    response = page.goto("/t/acme/compute/")
    assert response is not None and response.status == 404


def test_a_platform_admin_resizes_a_pool(page: Page, team, settings):
    from tests.factories import UserFactory

    settings.CELLAR_POOLS = ""
    admin = UserFactory(username="platform-admin")
    admin.is_staff = True
    admin.save(update_fields=["is_staff"])
    sign_in(page, "platform-admin", shots="compute-staff")
    visit(page, "/t/acme/compute/", "compute-staff-page", ready="[data-testid=pool-gpu]")
    edit = page.get_by_test_id("edit-gpu")
    edit.locator("summary").click()
    edit.get_by_label("Max workers").fill("3")
    edit.get_by_label("Memory per worker").fill("64Gi")
    snap(page, "compute-staff-edit")
    edit.get_by_role("button", name="Save").click()
    expect(page.locator(".msg.success")).to_contain_text("Pool gpu saved.")
    expect(page.get_by_test_id("pool-gpu")).to_contain_text("0–3 workers")
    assert Pool.objects.get(name="gpu").memory == 64 * 1024**3
    snap(page, "compute-staff-saved")
