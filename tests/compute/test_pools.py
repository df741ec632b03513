"""Pools: defaults, who reads and edits them, how the compiler and the dispatcher see them,
demand from the database, worker heartbeats behind the worker credential, usage against quota."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from cellar_server.compute import selectors, services
from cellar_server.compute.models import Pool, PoolSample, Worker
from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines import pools
from cellar_server.pipelines.models import TASK_DISPATCHED, TASK_RUNNING, TaskAttempt
from tests.compute.conftest import heartbeat
from tests.pipelines.engine.dispatch_fixtures import add_tasks, make_run, version_for

pytestmark = pytest.mark.django_db


def test_default_pools_are_cpu_and_gpu():
    cpu, gpu = Pool.objects.get(name="cpu"), Pool.objects.get(name="gpu")
    assert cpu.queue == "pool.cpu" and not cpu.is_gpu and cpu.min_workers <= cpu.max_workers
    assert gpu.queue == "pool.gpu" and gpu.gpus == 1 and gpu.min_workers == 0
    assert gpu.tolerations and gpu.node_selector


def test_pool_offers_come_from_the_pools_unless_cellar_pools_overrides(settings):
    settings.CELLAR_POOLS = ""
    offers = pools.pool_offers()
    assert set(offers) == {"cpu", "gpu"} and offers["gpu"].gpu == 1 and offers["cpu"].gpu == 0
    settings.CELLAR_POOLS = json.dumps({"cpu": {"cpu": 2}})
    assert set(pools.pool_offers()) == {"cpu"}


def test_with_no_pool_at_all_the_machine_is_the_cpu_pool(settings):
    settings.CELLAR_POOLS = ""
    Pool.objects.all().delete()
    assert list(pools.pool_offers()) == ["cpu"]


def test_everyone_reads_pools_staff_alone_edits(api_as, members, staff):
    viewer = api_as(members["viewer"])
    listed = viewer.get("/api/v1/compute/pools/")
    assert listed.status_code == 200
    names = [row["name"] for row in listed.json()["results"]]
    assert names == ["cpu", "gpu"]
    for role in ("viewer", "owner"):
        refused = api_as(members[role]).patch("/api/v1/compute/pools/cpu/", {"max_workers": 9}, format="json")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "staff_only"
    changed = api_as(staff).patch("/api/v1/compute/pools/cpu/", {"max_workers": 9, "memory": "8Gi"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["max_workers"] == 9 and changed.json()["memory"] == 8 * 1024**3
    assert api_as(staff).patch("/api/v1/compute/pools/tpu/", {"max_workers": 1}, format="json").status_code == 404


def test_anonymous_cannot_read_pools(api):
    assert api.get("/api/v1/compute/pools/").status_code == 401


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"min_workers": 5, "max_workers": 2}, "cannot exceed"),
        ({"concurrency": 0}, "at least 1"),
        ({"memory": "lots"}, "memory"),
        ({"tolerations": "none"}, "tolerations"),
        ({"name": "x"}, "Unknown"),
    ],
    ids=["min-over-max", "zero-concurrency", "bad-memory", "bad-tolerations", "unknown-field"],
)
def test_pool_edits_are_validated(staff, changes, message):
    with pytest.raises(ServiceError) as caught:
        services.pool_update(user=staff, pool=Pool.objects.get(name="cpu"), **changes)
    assert caught.value.code == "invalid_pool" and message in caught.value.message


@pytest.mark.both_databases  # the GROUP BY the autoscalers read
def test_demand_is_queued_dispatched_and_running_tasks(team, worker_api):
    run = make_run(version_for(team))
    add_tasks(run, "square", 5)
    for task in add_tasks(run, "train", 2, pool="gpu")[:1]:
        task.state = TASK_RUNNING
        task.save(update_fields=["state"])
    queued = add_tasks(run, "cube", 3)
    queued[0].state = TASK_DISPATCHED
    queued[0].save(update_fields=["state"])
    demand = worker_api.get("/api/v1/compute/pools/cpu/demand/").json()
    assert (demand["queued"], demand["dispatched"], demand["running"], demand["demand"]) == (7, 1, 0, 8)
    assert demand["desired_workers"] == 4  # max_workers of the default cpu pool
    gpu = worker_api.get("/api/v1/compute/pools/gpu/demand/").json()
    assert (gpu["queued"], gpu["running"], gpu["demand"], gpu["desired_workers"]) == (1, 1, 2, 1)
    assert PoolSample.objects.filter(pool="cpu", demand=8).exists()


@pytest.mark.parametrize(
    "demand, low, high, concurrency, expected",
    [(0, 0, 4, 1, 0), (0, 1, 4, 1, 1), (3, 0, 4, 1, 3), (100, 0, 4, 1, 4), (5, 0, 8, 2, 3)],
    ids=["idle-to-zero", "idle-at-min", "some", "capped", "concurrency"],
)
def test_desired_workers(demand, low, high, concurrency, expected):
    pool = Pool(name="p", min_workers=low, max_workers=high, concurrency=concurrency)
    assert selectors.desired_workers(pool, demand) == expected


def test_heartbeats_take_the_worker_credential_only(api, api_as, members, worker_api):
    body = heartbeat(gpus=[{"index": 0, "name": "H200", "utilization": 40}], cpu_percent=12.5, current_tasks=2)
    assert api.post("/api/v1/compute/workers/heartbeats/", body, format="json").status_code == 401
    owner = api_as(members["owner"]).post("/api/v1/compute/workers/heartbeats/", body, format="json")
    assert owner.status_code in (401, 403)
    api.credentials(HTTP_AUTHORIZATION="Bearer cwk_" + "0" * 64)
    assert api.post("/api/v1/compute/workers/heartbeats/", body, format="json").status_code == 401
    ok = worker_api.post("/api/v1/compute/workers/heartbeats/", body, format="json")
    assert ok.status_code == 200, ok.content
    worker = Worker.objects.get(name="cpu@box:1")
    assert (worker.pool, worker.current_tasks, worker.cpu_percent, worker.gpus[0]["name"]) == ("cpu", 2, 12.5, "H200")
    status = {s.pool.name: s for s in selectors.pool_statuses()}
    assert [w.name for w in status["cpu"].workers] == ["cpu@box:1"]


def test_a_malformed_heartbeat_is_refused(worker_api):
    for body in (heartbeat(pool=""), heartbeat(current_tasks="two"), heartbeat(state="zombie"), ["x"]):
        answer = worker_api.post("/api/v1/compute/workers/heartbeats/", body, format="json")
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_worker_report", body


def test_a_silent_or_stopped_worker_is_not_counted(worker_api):
    worker_api.post("/api/v1/compute/workers/heartbeats/", heartbeat(), format="json")
    worker_api.post("/api/v1/compute/workers/heartbeats/", heartbeat(worker="cpu@box:2", pid=2), format="json")
    Worker.objects.filter(name="cpu@box:1").update(last_seen=timezone.now() - timedelta(minutes=5))
    worker_api.post(
        "/api/v1/compute/workers/heartbeats/", heartbeat(worker="cpu@box:3", pid=3, state="stopped"), format="json"
    )
    assert [w.name for w in selectors.workers_alive(pool="cpu")] == ["cpu@box:2"]


@pytest.mark.both_databases  # duration arithmetic differs between SQLite and PostgreSQL
def test_usage_counts_cpu_and_gpu_hours_of_the_team_only(team, other_team):
    now = timezone.now()
    for owner, pool, hours in ((team, "cpu", 3), (team, "gpu", 2), (other_team, "gpu", 7)):
        run = make_run(version_for(owner, name=f"u-{pool}"))
        task = add_tasks(run, "square", 1, pool=pool)[0]
        TaskAttempt.all_teams.create(
            team=owner, task=task, number=1, lease="x", state="succeeded",
            started_at=now - timedelta(hours=hours), ended_at=now,
        )  # fmt: skip
    usage = selectors.team_usage(team=team)
    assert round(usage.cpu_hours, 2) == 3 and round(usage.gpu_hours, 2) == 2
    assert usage.gpu_hours_quota == team.gpu_hours_per_month and 0 < usage.gpu_quota_used < 1


def test_fallback_tasks_name_the_team_tasks_run_by_workers_without_a_gpu(team, other_team, worker_api):
    worker_api.post(
        "/api/v1/compute/workers/heartbeats/",
        heartbeat(worker="gpu@box:9", pool="gpu", gpu_fallback=True),
        format="json",
    )
    for owner in (team, other_team):
        task = add_tasks(make_run(version_for(owner, name="fb")), "train", 1, pool="gpu")[0]
        TaskAttempt.all_teams.create(team=owner, task=task, number=1, lease="y", worker="gpu@box:9", state="succeeded")
    rows = selectors.fallback_tasks(team_id=team.id)
    assert [(row["team"], row["pool"], row["worker"]) for row in rows] == [("acme", "gpu", "gpu@box:9")]
    assert selectors.workers_on_fallback(names=["gpu@box:9", "cpu@box:1"]) == {"gpu@box:9"}


@pytest.mark.parametrize("role", ["viewer", "owner"])
def test_the_team_usage_api(api_as, members, role):
    answer = api_as(members[role]).get("/api/v1/teams/acme/compute/usage/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["cpu_hours"] == 0 and body["gpu_hours_quota"] == "100.00" and body["by_pool_hours"] == {}


def test_the_team_usage_api_is_404_for_another_team(api_as, team, outsider):
    answer = api_as(outsider).get("/api/v1/teams/acme/compute/usage/")
    assert answer.status_code == 404


def test_pool_capacity_for_the_dispatch_window(staff, settings):
    from io import StringIO

    from django.core.management import call_command

    services.pool_update(user=staff, pool=Pool.objects.get(name="cpu"), max_workers=6, concurrency=2)
    out = StringIO()
    call_command("cellar_pool_capacity", stdout=out)
    assert json.loads(out.getvalue()) == {"cpu": 12, "gpu": 1}
    assert pools.pool_capacity("cpu") == 12 and pools.pool_capacity("tpu") is None
