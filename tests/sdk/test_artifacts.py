"""The content-addressed artifact store: local folder and S3 (moto stands in for AWS)."""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest
from moto import mock_aws

from cellar.artifacts import ArtifactStoreError, blob_key, store_from_url
from cellar.artifacts.s3 import S3ArtifactStore


def test_blob_key_layout():
    digest = hashlib.sha256(b"x").hexdigest()
    assert blob_key("acme", digest) == f"teams/acme/data/{digest[:2]}/{digest}"
    with pytest.raises(ArtifactStoreError):
        blob_key("../etc", digest)
    with pytest.raises(ArtifactStoreError):
        blob_key("acme", "not-a-digest")


def test_local_store_round_trip_and_dedup(tmp_path):
    store = store_from_url(f"file://{tmp_path}")
    digest = store.put_blob("acme", b"weights")
    assert digest == hashlib.sha256(b"weights").hexdigest()
    path = tmp_path / blob_key("acme", digest)
    inode = path.stat().st_ino
    os.utime(path, (1, 1))
    assert store.put_blob("acme", b"weights") == digest
    assert path.stat().st_ino == inode  # same content is not written twice (a write replaces the file)...
    assert path.stat().st_mtime > 1  # ...but re-using it marks it as used, for the garbage collector
    assert store.get_blob("acme", digest) == b"weights"
    assert not list(path.parent.glob(".tmp-*"))


def test_local_store_detects_corruption_and_escapes(tmp_path):
    store = store_from_url(f"file://{tmp_path}")
    digest = store.put_blob("acme", b"data")
    (tmp_path / blob_key("acme", digest)).write_bytes(b"tampered")
    with pytest.raises(ArtifactStoreError, match="corrupt"):
        store.get_blob("acme", digest)
    with pytest.raises(ArtifactStoreError, match="escapes"):
        store.put_bytes("../outside", b"x")
    with pytest.raises(ArtifactStoreError, match="no artifact"):
        store.get_bytes("teams/acme/missing")


def test_unknown_scheme_is_refused():
    with pytest.raises(ArtifactStoreError, match="ftp"):
        store_from_url("ftp://host/x")


@mock_aws
def test_s3_store_round_trip(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="cellar-artifacts")
    store = S3ArtifactStore("cellar-artifacts", "prod", client=client)
    store.check()
    digest = store.put_blob("acme", b"model")
    assert store.exists(blob_key("acme", digest))
    assert store.get_blob("acme", digest) == b"model"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="cellar-artifacts")["Contents"]]
    assert keys == [f"prod/{blob_key('acme', digest)}"]
    with pytest.raises(ArtifactStoreError):
        store.get_bytes("teams/acme/missing")


@mock_aws
def test_s3_check_fails_for_a_missing_bucket():
    store = S3ArtifactStore("nope", client=boto3.client("s3", region_name="us-east-1"))
    with pytest.raises(Exception):  # noqa: B017 - botocore's ClientError, whatever its code
        store.check()


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "teams/a/../../../outside", "..", "a/\0b"])
def test_local_store_refuses_keys_that_escape_it(tmp_path, key):
    from cellar.artifacts.base import ArtifactStoreError
    from cellar.artifacts.local import LocalArtifactStore

    store = LocalArtifactStore(tmp_path / "store")
    with pytest.raises(ArtifactStoreError, match="escapes the store"):
        store.put_bytes(key, b"x")
    assert not (tmp_path / "outside").exists()
