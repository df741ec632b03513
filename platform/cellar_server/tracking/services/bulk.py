"""Bulk SQL for the logging hot path: metric points, latest values and curve summaries.

A 1000-point batch is one statement per table, never a model instance. How the rows
reach the database is what differs by engine, because at this size the statement's
text costs more than the writes:

* SQLite: one multi-row INSERT with `?` placeholders per table, run on Django's own
  sqlite3 connection inside its transaction. Django's cursor would rewrite every `%s`
  of a 6,000-parameter statement with a regular expression, which takes longer than the
  insert; the sqlite3 module also keeps the prepared statement for the next batch.
* PostgreSQL: one statement for all three tables (data-modifying CTEs), each fed by
  `SELECT … FROM unnest(<one array literal per column>)`: a handful of parameters instead
  of 6,000 constants for the server to parse, and one round trip. Metric points go in
  with a plain INSERT; only if one is already stored (a client retry: the statement then
  fails with a unique violation, raised here as RepeatedPoints) does the caller write the
  batch again, with ON CONFLICT DO NOTHING, which costs about twice as much per row when
  used for every batch.

Statements executed the SQLite way are recorded in `connection.queries_log` when
queries are being logged (DEBUG, or CaptureQueriesContext in tests and profile_cellar.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from django.db import IntegrityError, connection

from cellar_server.tracking.search import documents

# (key, value, is_nan, step, timestamp): a cleaned metric point (services/runs.py).
MetricRow = tuple[str, float, bool, int, int]

_POINT_COLUMNS = "(run_id, key, value, is_nan, step, timestamp)"
_POINT_TYPES = ("varchar", "float8", "bool", "int8", "int8")
# A repeated point (a client retry) is ignored: the history stays exactly once per point.
_INSERT_POINTS = "INSERT INTO tracking_metric " + _POINT_COLUMNS + " {source}"
_INSERT_POINTS_IGNORING_REPEATS = _INSERT_POINTS + " ON CONFLICT DO NOTHING"
# The latest value per key, correct under concurrent writers: only a later (step, timestamp, value) wins.
_UPSERT_LATEST = (
    "INSERT INTO tracking_latestmetric " + _POINT_COLUMNS + " {source} "
    "ON CONFLICT (run_id, key) DO UPDATE SET "
    "value = excluded.value, is_nan = excluded.is_nan, step = excluded.step, timestamp = excluded.timestamp "
    "WHERE (excluded.step, excluded.timestamp, excluded.value) "
    "> (tracking_latestmetric.step, tracking_latestmetric.timestamp, tracking_latestmetric.value)"
)
_UNIQUE_VIOLATION = "23505"


class RepeatedPoints(Exception):
    """Some points of the batch are already stored (PostgreSQL's plain insert refused them)."""


def write_points(
    run_id: int,
    points: Sequence[MetricRow],
    latest: Sequence[MetricRow],
    summaries: Sequence[tuple],
    summary_statement: str,
    summary_types: Sequence[str],
    *,
    ignore_repeats: bool,
    merge_documents: bool = False,
) -> None:
    """Append points to the run's histories, raise each key's latest value, merge the summaries.

    With `ignore_repeats`, points already stored are left as they are; without it, PostgreSQL
    raises RepeatedPoints if there are any (the transaction is then unusable: start again).
    SQLite always ignores repeats, at no extra cost. With `merge_documents` (PostgreSQL), the
    same statement merges the raised latest values into the run's search documents: for a
    transaction that writes nothing else."""
    if not points:
        return
    if connection.vendor == "sqlite":
        _sqlite_execute(_INSERT_POINTS_IGNORING_REPEATS, run_id, points, width=5)
        _sqlite_execute(_UPSERT_LATEST, run_id, latest, width=5)
        for start in range(0, len(summaries), 1000):
            _sqlite_execute(summary_statement, None, summaries[start : start + 1000], width=len(summary_types))
        return
    insert = _INSERT_POINTS_IGNORING_REPEATS if ignore_repeats else _INSERT_POINTS
    points_source, points_params = _unnest_source(run_id, points, _POINT_TYPES)
    latest_source, latest_params = _unnest_source(run_id, latest, _POINT_TYPES)
    parts = [insert.format(source=points_source), _UPSERT_LATEST.format(source=latest_source)]
    params = [*points_params, *latest_params]
    if merge_documents:
        parts[1] += " RETURNING key, value, is_nan, timestamp, step"
        parts.append(documents.merge_returned_metrics("w1"))
        params.append(run_id)
    if summaries:
        parts.append(summary_statement.format(source=_unnest_rows_source(summary_types)))
        params += _array_params(summaries, summary_types)
    sql = "WITH " + ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts)) + " SELECT 1"
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    except IntegrityError as exc:
        if ignore_repeats or getattr(exc.__cause__, "pgcode", None) != _UNIQUE_VIOLATION:
            raise
        raise RepeatedPoints from exc


def upsert_rows(statement: str, rows: Sequence[tuple], types: Sequence[str]) -> None:
    """Run `statement` (with a `{source}` where the rows go) over full rows, first column first."""
    if not rows:
        return
    if connection.vendor == "sqlite":
        _sqlite_execute(statement, None, rows, width=len(types))
        return
    params = _array_params(rows, types)
    with connection.cursor() as cursor:
        cursor.execute(statement.format(source=_unnest_rows_source(types)), params)


# --- SQLite ------------------------------------------------------------------------------


def _sqlite_execute(statement: str, run_id: int | None, rows: Sequence[tuple], *, width: int) -> None:
    """One multi-row statement on Django's sqlite3 connection (already inside its transaction)."""
    one = "(" + ", ".join(["?"] * (width + (run_id is not None))) + ")"
    sql = statement.format(source="VALUES " + ", ".join([one] * len(rows)))
    if run_id is None:
        params = [value for row in rows for value in row]
    else:
        params = [value for row in rows for value in (run_id, *row)]
    connection.ensure_connection()
    if not connection.queries_logged:
        connection.connection.execute(sql, params)
        return
    started = time.monotonic()
    try:
        connection.connection.execute(sql, params)
    finally:
        shown = f"{len(rows)} rows: {statement.format(source='VALUES (…)')}"
        connection.queries_log.append({"sql": shown, "time": f"{time.monotonic() - started:.3f}"})


# --- PostgreSQL -----------------------------------------------------------------------------


def _unnest_rows_source(types: Sequence[str]) -> str:
    return "SELECT * FROM unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"


def _unnest_source(run_id: int, rows: Sequence[tuple], types: Sequence[str]) -> tuple[str, list]:
    source = "SELECT %s, * FROM unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"
    return source, [run_id, *_array_params(rows, types)]


def _array_params(rows: Sequence[tuple], types: Sequence[str]) -> list[str]:
    """One array literal per column of `rows`."""
    return [_array_literal(column, t) for column, t in zip(zip(*rows, strict=True), types, strict=True)]


def _array_literal(values: Iterable, sql_type: str) -> str:
    """A PostgreSQL array literal, parsed by the server's fast array input instead of its SQL parser.

    Floats use Python's shortest round-trip repr ('inf', '-inf' are valid input); text is always
    double-quoted with backslash escapes, so any character survives."""
    if sql_type in ("varchar", "text"):
        items = ['"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    elif sql_type == "bool":
        items = ["t" if v else "f" for v in values]
    elif sql_type == "float8":
        items = [repr(float(v)) for v in values]
    else:
        items = [str(int(v)) for v in values]
    return "{" + ",".join(items) + "}"
