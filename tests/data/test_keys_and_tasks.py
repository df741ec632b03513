"""Where the secrets key comes from, the beat task over every team, and the pages' query counts."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from cryptography.fernet import Fernet

from cellar_server.data import keys
from cellar_server.data.models import GcSweep
from cellar_server.data.tasks import data_gc
from tests.data.test_datasets import make_run, record

pytestmark = pytest.mark.django_db


def test_the_key_comes_from_the_environment_first(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLAR_HOME", str(tmp_path))
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("CELLAR_SECRETS_KEY", f"{a}, {b}")
    assert keys.secrets_keys() == [a, b]
    assert not (tmp_path / "secrets.key").exists()


def test_without_it_one_key_is_generated_once_privately(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLAR_HOME", str(tmp_path))
    monkeypatch.delenv("CELLAR_SECRETS_KEY", raising=False)
    found: list[list[str]] = []
    threads = [threading.Thread(target=lambda: found.append(keys.secrets_keys())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({tuple(k) for k in found}) == 1  # every process start agrees on one key
    (key,) = found[0]
    Fernet(key.encode())  # a valid Fernet key
    assert stat.S_IMODE(os.stat(tmp_path / "secrets.key").st_mode) == 0o600
    assert keys.secrets_keys() == [key]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".secrets.key.")]


def test_the_beat_task_sweeps_every_team(team, other_team, settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"
    assert data_gc() == {"teams": 2, "deleted": 0, "freed_bytes": 0}
    assert GcSweep.all_teams.filter(dry_run=False).count() == 2
    data_gc(team_id=team.pk, dry_run=True)
    assert GcSweep.all_teams.filter(team=team, dry_run=True).count() == 1


def test_the_data_page_query_count_does_not_grow_with_data_sets(
    client, members, team, django_assert_num_queries, settings, tmp_path
):
    editor = client
    editor.force_login(members["editor"])
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(members["editor"])
    for i in range(12):
        run = make_run(team, f"{i:032x}")
        record(api, run.run_uuid, f"{i:064x}", name=f"set-{i % 3}")
    # session, user, team, membership, connections, secrets, data sets, their runs, policy, sweeps, storage
    with django_assert_num_queries(11):
        assert editor.get("/t/acme/data/").status_code == 200
    dataset_id = api.get("/api/v1/teams/acme/datasets/").json()["results"][0]["dataset_id"]
    # session, user, team, membership, the data set, its inputs, the versions of its name
    with django_assert_num_queries(7):
        assert editor.get(f"/t/acme/data/datasets/{dataset_id}/").status_code == 200


def test_the_gc_is_on_the_control_workers_beat(settings):
    from cellar_server.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["data-gc"]
    assert entry["task"] == "cellar.data.gc" and entry["task"] in app.tasks
    assert entry["schedule"] == settings.CELLAR_GC_INTERVAL and entry["options"]["expires"] == entry["schedule"]
