"""`cellar.dataset(...)`: read data, hash it while reading, record it as an input of the run.

    cellar.dataset("warehouse", query="select * from churn")    # SQL via a connection -> DataFrame
    cellar.dataset("s3://bucket/train.csv", connection="lake")  # S3 (connection optional) -> DataFrame
    cellar.dataset("data/train.parquet")                        # a local file -> DataFrame (pyarrow)
    cellar.dataset("https://host/file.bin")                     # anything else -> bytes

The digest is the sha256 of the bytes read (for SQL, of the result as CSV), so two reads of the
same content share one version. `snapshot=True` stores the bytes in the artifact store (as the
run's artifact `datasets/<sha256>`); `digest="sha256:…"` then reads those stored bytes instead of
the source, so a rerun sees exactly the same data.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from cellar.data.remote import DataAccessError, call, resolve_connection, session_client

CHUNK = 1 << 20


def dataset(
    source: str,
    *,
    query: str | None = None,
    connection: str | None = None,
    name: str | None = None,
    context: str = "",
    snapshot: bool = False,
    digest: str | None = None,
    as_bytes: bool = False,
) -> Any:
    if query is not None:
        uri = f"sql://{source}?query={quote(query, safe='')}"[:2000]
        kind = "sql"
    else:
        uri, kind = _uri(source)
    name = name or _default_name(source, query)
    if digest is not None:
        data = _read_snapshot(digest)
        sha = digest.removeprefix("sha256:")
    elif kind == "sql":
        frame = _read_sql(source, query)
        data = frame.to_csv(index=False).encode()
        sha = hashlib.sha256(data).hexdigest()
    else:
        data, sha = _read_bytes(source, kind, connection)
    value, schema, profile = _decode(data, kind, uri, as_bytes)
    run = _active_run()
    stored = ""
    if snapshot:
        if run is None:
            raise DataAccessError("snapshot=True stores the bytes with a run: call it inside cellar.start_run().")
        run._store_bytes(data, f"datasets/{sha}")
        stored = sha
    record = {
        "name": name,
        "uri": uri,
        "digest": f"sha256:{sha}",
        "kind": kind,
        "size": len(data),
        "schema": schema,
        "profile": profile,
        "snapshot": stored or (sha if digest is not None else ""),
    }
    call("POST", "dataset-inputs/", json={"run_id": run.id if run else None, "context": context, "dataset": record})
    if hasattr(value, "attrs"):
        value.attrs["cellar_dataset"] = record
    return value


def _default_name(source: str, query: str | None) -> str:
    if query is not None:
        return source
    path = urlparse(source).path or source
    return Path(path).name or source


def _uri(source: str) -> tuple[str, str]:
    parsed = urlparse(source)
    if parsed.scheme in ("s3", "http", "https"):
        return source, "s3" if parsed.scheme == "s3" else "http"
    if parsed.scheme == "file":
        return source, "file"
    return Path(source).resolve().as_uri(), "file"


def _active_run():
    from cellar.tracking.run import active_run

    return active_run()


def _hashing_read(chunks) -> tuple[bytes, str]:
    hasher, buffer = hashlib.sha256(), io.BytesIO()
    for chunk in chunks:
        hasher.update(chunk)
        buffer.write(chunk)
    return buffer.getvalue(), hasher.hexdigest()


def _read_bytes(source: str, kind: str, connection: str | None) -> tuple[bytes, str]:
    if kind == "s3":
        parsed = urlparse(source)
        client = _s3_client(connection)
        body = client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
        return _hashing_read(iter(lambda: body.read(CHUNK), b""))
    if kind == "http":
        import requests

        session = _http_session(connection) if connection else requests.Session()
        with session.get(source, stream=True, timeout=60) as response:
            response.raise_for_status()
            return _hashing_read(response.iter_content(CHUNK))
    path = urlparse(source).path if source.startswith("file://") else source
    with open(os.path.expanduser(path), "rb") as handle:
        return _hashing_read(iter(lambda: handle.read(CHUNK), b""))


def _s3_client(connection: str | None):
    if connection:
        from cellar.data.connections import client_for

        return client_for("s3", resolve_connection(connection)["config"])
    import boto3

    return boto3.client("s3")


def _http_session(connection: str):
    from cellar.data.connections import client_for

    return client_for("http", resolve_connection(connection)["config"])


def _read_sql(connection: str, query: str):
    import pandas as pd
    import sqlalchemy

    from cellar.data.connections import client_for

    resolved = resolve_connection(connection)
    if resolved["kind"] != "sql":
        raise DataAccessError(
            f"Connection '{connection}' is {resolved['kind']}, not sql: query= needs a SQL connection."
        )
    engine = client_for("sql", resolved["config"])
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(sqlalchemy.text(query), conn)
    finally:
        engine.dispose()


def _read_snapshot(digest: str) -> bytes:
    sha = digest.removeprefix("sha256:")
    client, team = session_client()
    response = client._session.get(f"{client.url}/api/v1/teams/{quote(team)}/dataset-snapshots/{sha}/", timeout=300)
    if response.status_code != 200:
        raise DataAccessError(f"No stored snapshot {digest} in this team (HTTP {response.status_code}).")
    data = response.content
    if hashlib.sha256(data).hexdigest() != sha:
        raise DataAccessError(f"The stored snapshot {digest} does not match its digest.")
    return data


def _decode(data: bytes, kind: str, uri: str, as_bytes: bool) -> tuple[Any, dict, dict]:
    """(value, schema, profile): a DataFrame for SQL, CSV and parquet when pandas is installed, else bytes."""
    suffix = Path(urlparse(uri).path).suffix.lower()
    if as_bytes or (kind != "sql" and suffix not in (".csv", ".parquet", ".pq")):
        return data, {}, {}
    try:
        import pandas as pd
    except ImportError:
        return data, {}, {}
    if kind == "sql" or suffix == ".csv":
        frame = pd.read_csv(io.BytesIO(data))
    else:
        frame = pd.read_parquet(io.BytesIO(data))
    schema = {"columns": [{"name": str(c), "type": str(t)} for c, t in frame.dtypes.items()]}
    return frame, schema, {"rows": int(len(frame)), "columns": int(frame.shape[1])}
