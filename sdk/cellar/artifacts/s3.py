"""Artifacts in S3 or an S3-compatible store (MinIO, R2…) through boto3.

URL: s3://bucket/optional/prefix; the endpoint comes from AWS_ENDPOINT_URL
when set, credentials from boto3's usual chain.
"""

from __future__ import annotations

import os
from datetime import UTC
from typing import BinaryIO
from urllib.parse import urlparse

from cellar.artifacts.base import ArtifactStore, ArtifactStoreError

# A re-used blob older than this is re-stamped (a copy onto itself); the garbage collector's
# grace window (CELLAR_GC_GRACE_S, default 6 h) must be longer.
REFRESH_AFTER_S = float(os.environ.get("CELLAR_S3_REFRESH_AFTER_S", "3600"))


class S3ArtifactStore(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "", client=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3
            from botocore.config import Config

            # Bounded waits: an endpoint that accepts connections but never answers must fail a
            # step in seconds, not after boto's default 60 s read timeout on every retry.
            config = Config(
                connect_timeout=float(os.environ.get("CELLAR_S3_CONNECT_TIMEOUT", "10")),
                read_timeout=float(os.environ.get("CELLAR_S3_READ_TIMEOUT", "30")),
                retries={"max_attempts": int(os.environ.get("CELLAR_S3_MAX_ATTEMPTS", "3")), "mode": "standard"},
            )
            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None, config=config)
        self.client = client

    @classmethod
    def from_url(cls, url: str) -> S3ArtifactStore:
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ArtifactStoreError("an S3 URL names its bucket: s3://bucket/prefix")
        return cls(parsed.netloc, parsed.path)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: str) -> None:
        self.client.upload_file(path, self.bucket, self._key(key))

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            raise ArtifactStoreError(f"no artifact at {key!r}: {exc}") from None

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            raise ArtifactStoreError(f"no artifact at {key!r}: {exc}") from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError:
            return False
        return True

    def refresh(self, key: str) -> bool:
        """Exists? If it was last written over REFRESH_AFTER_S ago, copy it onto itself so its
        LastModified (the garbage collector's "last used") is now."""
        from datetime import datetime

        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError:
            return False
        age = (datetime.now(UTC) - head["LastModified"]).total_seconds()
        if age > REFRESH_AFTER_S:
            source = {"Bucket": self.bucket, "Key": self._key(key)}
            try:
                self.client.copy_object(
                    Bucket=self.bucket, Key=self._key(key), CopySource=source, MetadataDirective="REPLACE"
                )
            except ClientError:
                return False  # deleted meanwhile: the caller writes it again
        return True

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)
