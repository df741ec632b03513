"""The engine's settings (CELLAR_ENGINE_*) and the control tasks' wiring: beat entries name
registered tasks, a starting control worker asks for a reconcile, bad values say what is wrong."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from cellar_server.pipelines import tasks
from cellar_server.pipelines.engine import settings as engine_settings
from tests.pipelines.engine import dispatch_fixtures as fx

control_broker = fx.control_broker  # fixture


@pytest.mark.django_db
def test_unset_pool_workers_follow_the_pools_capacity_in_the_compute_app(settings):
    from cellar_server.compute.models import Pool

    settings.CELLAR_ENGINE_POOL_WORKERS = ""
    Pool.objects.filter(name="cpu").update(max_workers=3, concurrency=2)
    assert engine_settings.pool_workers("cpu") == 6
    settings.CELLAR_ENGINE_POOL_WORKERS = '{"gpu": 1}'  # the JSON names another pool only
    assert engine_settings.pool_workers("cpu") == 6
    assert engine_settings.pool_workers("unknown-pool") == 1


@pytest.mark.django_db
def test_defaults_are_safe_for_one_machine():
    assert engine_settings.claim_grace() == timedelta(seconds=120)
    assert engine_settings.lease_ttl() == timedelta(seconds=30)
    assert engine_settings.max_lost() == 3
    assert engine_settings.max_batch("cpu") == 200
    assert engine_settings.window_factor() == 2
    assert engine_settings.pool_workers("cpu") >= 1
    assert engine_settings.retry_backoff(1) == timedelta(seconds=2)
    assert engine_settings.retry_backoff(30) == timedelta(seconds=300)  # capped


@pytest.mark.parametrize(
    ("value", "pool", "workers", "batch"),
    [
        (4, "cpu", 4, 4),
        ("4", "gpu", 4, 4),
        ('{"cpu": 8, "gpu": 2}', "gpu", 2, 2),
        ('{"cpu": 8}', "nowhere", 1, 200),  # a pool the JSON does not name (nor the compute app): defaults
        ({"x": 3}, "x", 3, 3),
    ],
    ids=["int", "text", "json", "json-unnamed-pool", "dict"],
)
@pytest.mark.django_db
def test_pool_workers_and_max_batch_are_a_count_or_one_per_pool(settings, value, pool, workers, batch):
    settings.CELLAR_ENGINE_POOL_WORKERS = value
    settings.CELLAR_ENGINE_MAX_BATCH = value
    assert engine_settings.pool_workers(pool) == workers
    assert engine_settings.max_batch(pool) == batch


@pytest.mark.parametrize("value", ["many", "0", '{"cpu": -1}', '{"cpu": "eight"}', "[1]"])
def test_a_bad_pool_count_names_the_setting(settings, value):
    settings.CELLAR_ENGINE_POOL_WORKERS = value
    with pytest.raises(ImproperlyConfigured, match="CELLAR_ENGINE_POOL_WORKERS"):
        engine_settings.pool_workers("cpu")


def test_a_negative_duration_is_refused(settings):
    settings.CELLAR_ENGINE_CLAIM_GRACE = -5
    with pytest.raises(ImproperlyConfigured, match="CELLAR_ENGINE_CLAIM_GRACE"):
        engine_settings.claim_grace()


def test_the_beat_runs_registered_control_tasks(settings):
    from cellar_server.celery import app

    app.loader.import_default_modules()
    # The engine's entries; other apps' (the data layer's daily GC) are tested with their app.
    entries = {k: v for k, v in settings.CELERY_BEAT_SCHEDULE.items() if v["task"].startswith("cellar.engine.")}
    assert {entry["task"] for entry in entries.values()} == {"cellar.engine.reconcile", "cellar.engine.schedules"}
    for entry in entries.values():
        assert entry["task"] in app.tasks
        assert 0 < entry["schedule"] <= 60 and entry["options"]["expires"] == entry["schedule"]


def test_a_starting_control_worker_asks_for_a_reconcile(control_broker):
    from cellar_server.celery import app

    client = redis.Redis.from_url(control_broker)
    client.delete("control")
    tasks._reconcile_at_start(sender=SimpleNamespace(app=app))
    tasks._reconcile_at_start(sender=SimpleNamespace(app=SimpleNamespace(main="cellar_worker")))  # a pool agent
    names = [json.loads(raw)["headers"]["task"] for raw in client.lrange("control", 0, -1)]
    client.delete("control")
    assert names == ["cellar.engine.reconcile"]
