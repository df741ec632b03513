"""Resolving a connection with its secret values, and the "test" action.

The test runs in the web process on the admin's request: it opens the connection the way
`cellar.connect` would (SQLAlchemy, boto3, requests), with short timeouts, and reports the
driver's message with every secret value of the connection replaced by '***'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cellar_server.data import services
from cellar_server.data.models import HTTP, S3, SQL, Connection, Secret

TIMEOUT_S = 5
# config key naming a secret -> the key its value takes in the resolved config
RESOLVED_KEYS = {
    "password_secret": "password",
    "access_key_id_secret": "access_key_id",
    "secret_access_key_secret": "secret_access_key",
    "secret": "token",
}


def resolve(connection: Connection) -> dict[str, Any]:
    """{"name", "kind", "config"} with each `*_secret` replaced by its value (see RESOLVED_KEYS)."""
    config = dict(connection.config)
    names = {key: config.pop(key) for key in list(config) if key in RESOLVED_KEYS}
    secrets = {s.name: s for s in Secret.all_teams.filter(team_id=connection.team_id, name__in=names.values())}
    for key, name in names.items():
        secret = secrets.get(name)
        if secret is None:
            raise services.ServiceError(
                "secret_not_found",
                f"Connection '{connection.name}' uses secret '{name}', which no longer exists; set it again.",
                status_code=409,
            )
        config[RESOLVED_KEYS[key]] = services.secret_value(secret=secret)
    return {"name": connection.name, "kind": connection.kind, "config": config}


def scrub(text: str, values: list[str]) -> str:
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str


def test(connection: Connection) -> TestResult:
    try:
        resolved = resolve(connection)
    except services.ServiceError as exc:
        return TestResult(False, exc.message)
    config = resolved["config"]
    values = [config.get(k, "") for k in RESOLVED_KEYS.values()]
    try:
        message = {SQL: _test_sql, S3: _test_s3, HTTP: _test_http}[connection.kind](config)
    except Exception as exc:  # the driver's own error, whatever its type, is the report
        return TestResult(False, scrub(_driver_message(exc), values)[:1000])
    return TestResult(True, scrub(message, values))


def _driver_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the DBAPI error
    text = str(orig if orig is not None else exc).strip()
    return f"{type(orig or exc).__name__}: {text}" if text else type(orig or exc).__name__


def _test_sql(config: dict[str, Any]) -> str:
    import sqlalchemy

    from cellar.data.connections import sql_url

    url = sql_url(config)
    connect_args = {"connect_timeout": TIMEOUT_S} if url.get_backend_name() in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
            version = conn.dialect.server_version_info
    finally:
        engine.dispose()
    shown = ".".join(str(p) for p in version) if version else ""
    return f"Connected to {url.get_backend_name()} {shown} at {url.host or url.database}.".replace("  ", " ")


def _test_s3(config: dict[str, Any]) -> str:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=config.get("endpoint_url") or None,
        region_name=config.get("region") or None,
        aws_access_key_id=config.get("access_key_id") or None,
        aws_secret_access_key=config.get("secret_access_key") or None,
        config=Config(connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries={"max_attempts": 1}),
    )
    listed = client.list_objects_v2(Bucket=config["bucket"], Prefix=config.get("prefix", ""), MaxKeys=1)
    where = f"s3://{config['bucket']}/{config.get('prefix', '')}"
    return f"Listed {where}: {'objects found' if listed.get('KeyCount') else 'empty so far'}."


def _test_http(config: dict[str, Any]) -> str:
    import requests

    headers = {}
    if config.get("token"):
        header = config.get("header") or "Authorization"
        headers[header] = f"Bearer {config['token']}" if header.lower() == "authorization" else config["token"]
    response = requests.get(config["url"], headers=headers, timeout=TIMEOUT_S, allow_redirects=False)
    if response.status_code >= 400:
        raise RuntimeError(f"HTTP {response.status_code} from {config['url']}")
    return f"HTTP {response.status_code} from {config['url']}."
