"""The garbage collector: only unreferenced blobs older than the grace window go; a writer that
re-uses a blob during a sweep keeps it; a dry run deletes nothing; retention expires old runs'
artifacts except pinned ones."""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.core.management import call_command

from cellar.artifacts import blob_key, store_from_url
from cellar_server.core import blob_refs
from cellar_server.data import gc, services
from cellar_server.teams.actors import SYSTEM
from cellar_server.tracking.models import ArtifactFile, Experiment, Run, RunTag
from cellar_server.tracking.services.artifacts import artifact_put

pytestmark = pytest.mark.django_db
OLD = time.time() - 30 * 86400


@pytest.fixture
def store(settings, tmp_path):  # noqa: F811  (the engine's `store` fixture is not this one)
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"
    return store_from_url(settings.ARTIFACT_STORE_URL)


def put_old(store, team, data: bytes) -> str:
    sha = store.put_blob(team.slug, data)
    os.utime(store._path(blob_key(team.slug, sha)), (OLD, OLD))
    return sha


def exists(store, team, sha) -> bool:
    return store.exists(blob_key(team.slug, sha))


def referenced(team, data: bytes, path: str = "1/notarun/artifacts/x"):
    return artifact_put(team=team, path=path, chunks=[data]).sha256


def test_unreferenced_old_blobs_go_referenced_and_fresh_ones_stay(team, store):
    garbage = put_old(store, team, b"garbage")
    kept = referenced(team, b"kept")
    os.utime(store._path(blob_key(team.slug, kept)), (OLD, OLD))
    fresh = store.put_blob(team.slug, b"fresh, not referenced yet")
    sweep = gc.gc_sweep(team=team, grace_s=3600)
    assert (sweep.scanned, sweep.live, sweep.kept_recent, sweep.deleted) == (3, 1, 1, 1)
    assert sweep.freed_bytes == len(b"garbage") and sweep.sample == [garbage]
    assert not exists(store, team, garbage)
    assert exists(store, team, kept) and exists(store, team, fresh)


def test_a_dry_run_reports_and_deletes_nothing(team, store):
    garbage = put_old(store, team, b"garbage" * 10)
    sweep = gc.gc_sweep(team=team, dry_run=True, grace_s=60)
    assert sweep.deleted == 1 and sweep.freed_bytes == 70 and sweep.dry_run
    assert exists(store, team, garbage)
    call_command("cellar_gc", "--team", team.slug, "--dry-run", "--grace", "60")
    assert exists(store, team, garbage)


def test_other_teams_blobs_are_not_touched(team, other_team, store):
    theirs = put_old(store, other_team, b"theirs")
    gc.gc_sweep(team=team, grace_s=0)
    assert exists(store, other_team, theirs)


def test_a_writer_reusing_a_blob_during_the_sweep_keeps_it(team, store):
    """The sweep lists the old, unreferenced blob; then, before it deletes, a writer stores the
    same bytes again (a cache hit, a rerun) and has not recorded its reference yet."""
    data = b"model weights, identical across runs"
    sha = put_old(store, team, data)
    reused = []

    def writer_arrives(team_, cut):
        reused.append(store.put_blob(team.slug, data))  # refreshes the existing blob
        return []

    blob_refs.register("test.writer", writer_arrives)
    try:
        sweep = gc.gc_sweep(team=team, grace_s=3600)
    finally:
        blob_refs._providers.pop("test.writer")
    assert reused == [sha]
    assert exists(store, team, sha) and sweep.deleted == 0 and sweep.kept_recent == 1
    referenced(team, data)  # the writer records its reference now: the bytes are there
    assert store.get_blob(team.slug, sha) == data


def test_without_the_refresh_the_same_blob_would_go(team, store):
    """The control for the test above: nothing touches it, so it is deleted."""
    sha = put_old(store, team, b"model weights, identical across runs")
    assert gc.gc_sweep(team=team, grace_s=3600).deleted == 1
    assert not exists(store, team, sha)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_lose_a_referenced_blob(team, store):
    """Writers store blobs (new and re-used) and record references while sweeps run back to back;
    every recorded reference still has its bytes at the end."""
    shared = [put_old(store, team, f"shared-{i}".encode()) for i in range(20)]
    stop = threading.Event()
    recorded: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def write():
        from django.db import connection

        try:
            i = 0
            while not stop.is_set():
                data = f"shared-{i % 20}".encode() if i % 2 else f"new-{i}".encode()
                row = artifact_put(team=team, path=f"1/w/artifacts/{i}", chunks=[data])
                recorded.append((row.path, row.sha256))
                i += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    sweeps = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline or len(recorded) < 20:
            sweeps.append(gc.gc_sweep(team=team, grace_s=1))
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert len(recorded) >= 20 and len(sweeps) > 5
    assert sum(s.deleted for s in sweeps) >= 10  # the sweeps did delete (old shared blobs nobody re-used yet)
    missing = [path for path, sha in recorded if not exists(store, team, sha)]
    assert missing == []
    assert len(shared) == 20


def test_retention_expires_old_runs_artifacts_but_not_pinned_ones(team, store, members):
    exp = Experiment.all_teams.create(team=team, number=1, name="e", creation_time=0, last_update_time=0)
    old_ms = int(OLD * 1000)
    expired = Run.all_teams.create(team=team, run_uuid="a" * 32, experiment=exp, start_time=old_ms, status="FINISHED")
    pinned = Run.all_teams.create(team=team, run_uuid="b" * 32, experiment=exp, start_time=old_ms, status="FINISHED")
    recent = Run.all_teams.create(team=team, run_uuid="c" * 32, experiment=exp, start_time=int(time.time() * 1000))
    RunTag.objects.create(run=pinned, key="cellar.pinned", value="true")
    shas = {
        run.run_uuid: referenced(team, run.run_uuid.encode(), f"1/{run.run_uuid}/artifacts/m.bin")
        for run in (expired, pinned, recent)
    }
    for sha in shas.values():
        os.utime(store._path(blob_key(team.slug, sha)), (OLD, OLD))
    assert gc.gc_sweep(team=team, grace_s=60).deleted == 0  # no policy: nothing expires
    services.retention_policy_set(
        actor=SYSTEM,
        team=team,
        enabled=True,
        keep_last_runs=0,
        expire_after_days=7,
    )
    dry = gc.gc_sweep(team=team, grace_s=60, dry_run=True)
    assert dry.deleted == 1 and ArtifactFile.all_teams.count() == 3
    sweep = gc.gc_sweep(team=team, grace_s=60)
    assert sweep.deleted == 1
    assert not exists(store, team, shas[expired.run_uuid])
    # The expired run's files are gone from its listing too; the others' stay.
    assert sorted(ArtifactFile.all_teams.values_list("path", flat=True)) == sorted(
        f"1/{run.run_uuid}/artifacts/m.bin" for run in (pinned, recent)
    )
    assert exists(store, team, shas[pinned.run_uuid]) and exists(store, team, shas[recent.run_uuid])


@pytest.mark.parametrize("role,status", [("viewer", 403), ("editor", 403), ("admin", 200), ("owner", 200)], ids=str)
def test_sweeping_from_the_api_is_for_admins(api_as, members, role, status, store):
    response = api_as(members[role]).post("/api/v1/teams/acme/gc/", {"dry_run": True}, format="json")
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json()["dry_run"] is True


def test_another_team_cannot_sweep(api_as, outsider, store):
    assert api_as(outsider).post("/api/v1/teams/acme/gc/", {}, format="json").status_code == 404


@pytest.fixture
def s3_store(monkeypatch, settings):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    settings.ARTIFACT_STORE_URL = "s3://h9-gc/prod"
    store = store_from_url(settings.ARTIFACT_STORE_URL)
    store.client.create_bucket(Bucket="h9-gc")
    yield store
    server.stop()


def test_the_sweep_on_s3_deletes_only_unreferenced_blobs(team, s3_store, monkeypatch):
    garbage = s3_store.put_blob(team.slug, b"garbage on s3")
    kept = referenced(team, b"kept on s3")
    # A negative grace puts the cutoff in the future: S3 cannot back-date LastModified.
    dry = gc.gc_sweep(team=team, dry_run=True, grace_s=-60)
    assert (dry.scanned, dry.live, dry.deleted) == (2, 1, 1)
    sweep = gc.gc_sweep(team=team, grace_s=-60)
    assert sweep.deleted == 1 and sweep.freed_bytes == len(b"garbage on s3")
    assert not s3_store.exists(blob_key(team.slug, garbage)) and s3_store.exists(blob_key(team.slug, kept))
    # Re-using a blob older than CELLAR_S3_REFRESH_AFTER_S re-stamps it (a copy onto itself).
    import cellar.artifacts.s3 as s3_module

    key = s3_store._key(blob_key(team.slug, kept))
    before = s3_store.client.head_object(Bucket="h9-gc", Key=key)["LastModified"]
    time.sleep(1.1)
    monkeypatch.setattr(s3_module, "REFRESH_AFTER_S", 0.0)
    assert s3_store.put_blob(team.slug, b"kept on s3") == kept
    assert s3_store.client.head_object(Bucket="h9-gc", Key=key)["LastModified"] > before
