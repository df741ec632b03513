"""Artifacts on S3: Cellar against a local S3-compatible HTTP server (moto in server mode)."""

from __future__ import annotations

import hashlib

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cellar.artifacts import blob_key
from tests.factories import mint_token

pytestmark = pytest.mark.django_db

BUCKET = "cellar-artifacts"
ART = "/t/acme/mlflow/api/2.0/mlflow-artifacts/artifacts/"


@pytest.fixture
def s3(monkeypatch, settings):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    settings.ARTIFACT_STORE_URL = f"s3://{BUCKET}/prod"
    yield client
    server.stop()


def test_upload_download_list_through_s3(client, team, members, s3):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {mint_token(team, members['editor'])[1]}"}
    payload = b"weights" * 1000
    put = client.put(ART + "0/run1/artifacts/model.bin", payload, content_type="application/octet-stream", **headers)
    assert put.status_code == 200
    key = f"prod/{blob_key('acme', hashlib.sha256(payload).hexdigest())}"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == payload
    got = client.get(ART + "0/run1/artifacts/model.bin", **headers)
    assert b"".join(got.streaming_content) == payload
    listing = client.get(ART, {"path": "0/run1/artifacts"}, **headers).json()
    assert listing == {"files": [{"path": "model.bin", "is_dir": False, "file_size": len(payload)}]}
    # The same bytes under another path are stored once.
    client.put(ART + "0/run2/artifacts/copy.bin", payload, content_type="application/octet-stream", **headers)
    assert len(s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == 1


def test_readyz_checks_the_bucket(client, broker, s3, settings):
    assert client.get("/readyz").json()["checks"]["artifact_store"]["ok"] is True
    settings.ARTIFACT_STORE_URL = "s3://no-such-bucket/x"
    assert client.get("/readyz").json()["checks"]["artifact_store"]["ok"] is False
