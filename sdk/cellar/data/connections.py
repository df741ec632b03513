"""`cellar.connect(name)`: a ready client for a team connection."""

from __future__ import annotations

from typing import Any

from cellar.data.remote import resolve_connection


def connect(name: str) -> Any:
    """SQL: a SQLAlchemy Engine. S3: a boto3 S3 client (with `.cellar_bucket` / `.cellar_prefix`
    set on it). HTTP: a requests Session sending the secret, with `.base_url`."""
    resolved = resolve_connection(name)
    return client_for(resolved["kind"], resolved["config"])


def sql_url(config: dict[str, Any]) -> Any:
    """The SQLAlchemy URL with the password set. A bare `postgresql://` uses psycopg2 when
    psycopg (3), SQLAlchemy 2.1's default, is not installed."""
    import importlib.util

    import sqlalchemy

    url = sqlalchemy.engine.make_url(config["url"])
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        url = url.set(drivername="postgresql+psycopg2")
    if config.get("password"):
        url = url.set(password=config["password"])
    return url


def client_for(kind: str, config: dict[str, Any]) -> Any:
    if kind == "sql":
        import sqlalchemy

        return sqlalchemy.create_engine(sql_url(config))
    if kind == "s3":
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=config.get("endpoint_url") or None,
            region_name=config.get("region") or None,
            aws_access_key_id=config.get("access_key_id") or None,
            aws_secret_access_key=config.get("secret_access_key") or None,
        )
        client.cellar_bucket = config["bucket"]
        client.cellar_prefix = config.get("prefix", "")
        return client
    if kind == "http":
        import requests

        session = requests.Session()
        if config.get("token"):
            header = config.get("header") or "Authorization"
            value = f"Bearer {config['token']}" if header.lower() == "authorization" else config["token"]
            session.headers[header] = value
        session.base_url = config["url"]
        return session
    raise ValueError(f"unknown connection kind {kind!r}")
