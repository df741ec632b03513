"""Write the same search and history data into MLflow's and Cellar's databases, fast.

Population is set-up, not a measurement: it goes straight into each server's own tables with
executemany SQL, in one transaction, after the server created its schema (MLflow on start,
Cellar by `migrate`). The experiments and the history run are created through the API first
(client_script.py setup), so every row the servers own (ids, artifact URIs, the default
experiment) is theirs; the SQL only adds runs, params, tags and metric points to them.

Both sides get identical data from one seeded generator: the same run ids, names, start
times, params, tags and metric values, so a search must return the same runs in the same order
on both (the benchmark checks it).
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

T0 = 1_700_000_000_000  # ms
N_PARAMS, N_METRICS = 5, 5
HISTORY_KEY = "loss"
USER_NAME = "bench"  # the Cellar user cellar_bootstrap creates; MLflow's runs get the same user_id
CHUNK = 5000


@dataclass(frozen=True)
class BenchRun:
    uuid: str
    name: str
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def runs(n: int, seed: int = 1234) -> list[BenchRun]:
    """n runs with 5 params (p0..p4 = 'v0'..'v9'), 5 metrics (m0..m4 in [0, 1)) and 3 tags."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = f"bench-run-{i:06d}"
        out.append(
            BenchRun(
                uuid=uuid.UUID(int=rng.getrandbits(128)).hex,
                name=name,
                start_time=T0 + i * 1000,
                params={f"p{j}": f"v{rng.randrange(10)}" for j in range(N_PARAMS)},
                metrics={f"m{j}": rng.random() for j in range(N_METRICS)},
                tags={"team": f"group-{i % 10}", "stage": rng.choice(["dev", "prod"]), "mlflow.runName": name},
            )
        )
    return out


def history(n: int) -> Iterator[tuple[int, int, float]]:
    """(step, timestamp, value) of one metric with n points: a decaying, noisy loss curve."""
    rng = random.Random(99)
    for step in range(n):
        yield step, T0 + step * 10, 1.0 / (1 + step / 1000) + rng.random() * 0.01


def connect(db_url: str):
    if db_url.startswith("sqlite:///"):
        return sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=60)
    import psycopg2

    return psycopg2.connect(db_url.replace("postgres://", "postgresql://", 1))


def _param(conn) -> str:
    return "?" if isinstance(conn, sqlite3.Connection) else "%s"


def _executemany(conn, sql: str, rows) -> None:
    sql = sql.replace("%s", _param(conn))
    cursor = conn.cursor()
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            cursor.executemany(sql, batch)
            batch = []
    if batch:
        cursor.executemany(sql, batch)
    cursor.close()


def _scalar(conn, sql: str, args: tuple):
    cursor = conn.cursor()
    cursor.execute(sql.replace("%s", _param(conn)), args)
    row = cursor.fetchone()
    cursor.close()
    if row is None:
        raise RuntimeError(f"no row for {sql} {args}")
    return row[0]


def _analyze(conn, tables: list[str]) -> None:
    # PostgreSQL's autovacuum would analyze the bulk-loaded tables within a minute anyway; doing it
    # now makes both sides' plans deterministic. SQLite never analyzes on its own, so neither do we.
    if not isinstance(conn, sqlite3.Connection):
        cursor = conn.cursor()
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
        cursor.close()
        conn.commit()


def _build_search_documents(conn, team_id: int) -> None:
    """Cellar on PostgreSQL keeps each run's params, tags and latest metrics as search documents
    on the run row (tracking/search/documents.py), written by the API in the same transaction as
    the rows; rows loaded with SQL get theirs from the same statement a repair uses. That second
    pass leaves the first version of every run row dead: VACUUM removes them, as autovacuum would
    after a load this size (this machine's server runs with autovacuum off)."""
    from cellar_server.tracking.search.documents import REBUILD_SQL

    cursor = conn.cursor()
    cursor.execute(REBUILD_SQL.format(where="r.team_id = %s"), (team_id,))
    conn.commit()
    conn.autocommit = True
    cursor.execute("VACUUM tracking_run")
    conn.autocommit = False
    cursor.close()


# --- MLflow: experiments, runs, params, tags, metrics, latest_metrics (created by `mlflow server`) ---


def populate_mlflow(
    db_url: str, *, experiment_id: str, bench_runs: list[BenchRun], history_run: str, history_points: int
) -> None:
    conn = connect(db_url)
    try:
        exp = int(experiment_id)
        _executemany(
            conn,
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                (r.uuid, r.name, "LOCAL", "bench.py", "", USER_NAME, "FINISHED", r.start_time, r.start_time + 500,
                 "", "active", f"mlflow-artifacts:/{exp}/{r.uuid}/artifacts", exp)
                for r in bench_runs
            ),
        )  # fmt: skip
        _executemany(
            conn,
            "INSERT INTO params (key, value, run_uuid) VALUES (%s, %s, %s)",
            ((k, v, r.uuid) for r in bench_runs for k, v in r.params.items()),
        )
        _executemany(
            conn,
            "INSERT INTO tags (key, value, run_uuid) VALUES (%s, %s, %s)",
            ((k, v, r.uuid) for r in bench_runs for k, v in r.tags.items()),
        )
        _executemany(
            conn,
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (%s, %s, %s, %s, %s, %s)",
            ((k, v, r.start_time, r.uuid, 0, False) for r in bench_runs for k, v in r.metrics.items()),
        )
        _executemany(
            conn,
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            ((k, v, r.start_time, 0, False, r.uuid) for r in bench_runs for k, v in r.metrics.items()),
        )
        last = None
        if history_points:
            _executemany(
                conn,
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (%s, %s, %s, %s, %s, %s)",
                ((HISTORY_KEY, value, ts, history_run, step, False) for step, ts, value in history(history_points)),
            )
            *_, last = history(history_points)
            _executemany(
                conn,
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(HISTORY_KEY, last[2], last[1], last[0], False, history_run)],
            )
        conn.commit()
        _analyze(conn, ["runs", "params", "tags", "metrics", "latest_metrics"])
    finally:
        conn.close()


# --- Cellar: tracking_run, tracking_param, tracking_runtag, tracking_metric, tracking_latestmetric ---


def populate_cellar(
    db_url: str, *, team: str, experiment_id: str, bench_runs: list[BenchRun], history_run: str, history_points: int
) -> None:
    conn = connect(db_url)
    try:
        team_id = _scalar(conn, "SELECT id FROM teams_team WHERE slug = %s", (team,))
        number = int(experiment_id)
        exp_pk = _scalar(
            conn, "SELECT id FROM tracking_experiment WHERE team_id = %s AND number = %s", (team_id, number)
        )
        user_pk = _scalar(conn, "SELECT id FROM auth_user WHERE username = %s", (USER_NAME,))
        _executemany(
            conn,
            "INSERT INTO tracking_run (team_id, run_uuid, experiment_id, name, user_id, user_name, status, "
            "start_time, end_time, lifecycle_stage, artifact_uri, source_type, source_name, code_version) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                (team_id, r.uuid, exp_pk, r.name, user_pk, USER_NAME, "FINISHED", r.start_time, r.start_time + 500,
                 "active", f"mlflow-artifacts:/{number}/{r.uuid}/artifacts", "script", "bench.py", "")
                for r in bench_runs
            ),
        )  # fmt: skip
        cursor = conn.cursor()
        cursor.execute(
            "SELECT run_uuid, id FROM tracking_run WHERE experiment_id = %s".replace("%s", _param(conn)), (exp_pk,)
        )
        pk = dict(cursor.fetchall())
        cursor.close()
        _executemany(
            conn,
            "INSERT INTO tracking_param (run_id, key, value) VALUES (%s, %s, %s)",
            ((pk[r.uuid], k, v) for r in bench_runs for k, v in r.params.items()),
        )
        _executemany(
            conn,
            "INSERT INTO tracking_runtag (run_id, key, value) VALUES (%s, %s, %s)",
            ((pk[r.uuid], k, v) for r in bench_runs for k, v in r.tags.items()),
        )
        metric_sql = "INSERT INTO {table} (run_id, key, value, is_nan, step, timestamp) VALUES (%s, %s, %s, %s, %s, %s)"
        for table in ("tracking_metric", "tracking_latestmetric"):
            _executemany(
                conn,
                metric_sql.format(table=table),
                ((pk[r.uuid], k, v, False, 0, r.start_time) for r in bench_runs for k, v in r.metrics.items()),
            )
        if history_points:
            history_pk = _scalar(conn, "SELECT id FROM tracking_run WHERE run_uuid = %s", (history_run,))
            _executemany(
                conn,
                metric_sql.format(table="tracking_metric"),
                ((history_pk, HISTORY_KEY, value, False, step, ts) for step, ts, value in history(history_points)),
            )
            *_, last = history(history_points)
            _executemany(
                conn,
                metric_sql.format(table="tracking_latestmetric"),
                [(history_pk, HISTORY_KEY, last[2], False, last[0], last[1])],
            )
        conn.commit()
        if not isinstance(conn, sqlite3.Connection):
            _build_search_documents(conn, team_id)
        _analyze(
            conn, ["tracking_run", "tracking_param", "tracking_runtag", "tracking_metric", "tracking_latestmetric"]
        )
    finally:
        conn.close()
