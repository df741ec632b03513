"""Task rows written in bulk with plain SQL.

A 20,000-element fan-out creates 20,000 rows in one transaction, and every result batch updates
hundreds. Django's bulk_create builds a model instance and prepares every field of every row
(about 0.5 ms per row here), and bulk_update builds a CASE per field and row; both cost more than
the database's own work. These helpers send the same rows as one multi-row INSERT per chunk
(PostgreSQL: psycopg2's execute_values; SQLite: executemany) and one UPDATE per row through
executemany. Values are prepared the way Django stores them (JSON text, adapted datetimes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from cellar_server.pipelines.models import TASK_QUEUED, StepCacheEntry, Task

CHUNK = 1000


@dataclass
class NewTask:
    """A task row about to be inserted (no model instance: see the module docstring)."""

    team_id: int
    run_id: int
    step: str
    index: int
    kind: str
    pool: str
    created_at: datetime
    state: str = TASK_QUEUED
    inputs: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] | None = None
    logs: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""
    cloned_from_id: int | None = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


_COLUMNS = [
    ("team_id", "plain"),
    ("run_id", "plain"),
    ("step", "plain"),
    ("index", "plain"),
    ("kind", "plain"),
    ("pool", "plain"),
    ("state", "plain"),
    ("inputs", "json"),
    ("item", "json?"),
    ("outputs", "json"),
    ("items", "json?"),
    ("logs", "json"),
    ("cache_key", "plain"),
    ("cloned_from_id", "plain"),
    ("error", "json?"),
    ("created_at", "time"),
    ("started_at", "time"),
    ("ended_at", "time"),
]
# Columns the dataclass leaves to their defaults.
_DEFAULTS = [("attempt", 0), ("lost_attempts", 0), ("lease", ""), ("worker", ""), ("live_logs", "{}")]


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # most inputs, outputs and logs of a new row
    return _ENCODER.encode(value)


def insert_tasks(tasks: list[NewTask]) -> None:
    """Insert `tasks` (their ids are not read back: callers look rows up by (run, step, index, kind))."""
    if not tasks:
        return
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    names = [name for name, _ in _COLUMNS] + [name for name, _ in _DEFAULTS]
    columns = ", ".join(quote(Task._meta.get_field(n.removesuffix("_id")).column) for n in names)
    defaults = [value for _, value in _DEFAULTS]
    times: dict[datetime, Any] = {}  # a batch shares a few timestamps: adapt each once
    rows = []
    for task in tasks:
        row = []
        for name, how in _COLUMNS:
            value = getattr(task, name)
            if how == "json" or (how == "json?" and value is not None):
                value = _dumps(value)
            elif how == "time" and value is not None:
                if value not in times:
                    times[value] = adapt(value)
                value = times[value]
            row.append(value)
        rows.append(row + defaults)
    _insert(quote(Task._meta.db_table), columns, rows)


def insert_cache_entries(entries: list[tuple[int, str, dict[str, Any], int]]) -> None:
    """Insert (team_id, key, outputs, task_id) step-cache entries; a key the team already has
    keeps its first entry (ON CONFLICT DO NOTHING: the same key means the same content)."""
    if not entries:
        return
    quote = connection.ops.quote_name
    fields = ["team", "key", "outputs", "task", "created_at"]
    columns = ", ".join(quote(StepCacheEntry._meta.get_field(n).column) for n in fields)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = [[team_id, key, _dumps(outputs), task_id, now] for team_id, key, outputs, task_id in entries if key]
    _insert(quote(StepCacheEntry._meta.db_table), columns, rows, suffix=" ON CONFLICT DO NOTHING")


def _insert(table: str, columns: str, rows: list[list[Any]], suffix: str = "") -> None:
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            if connection.vendor == "postgresql":
                from psycopg2.extras import execute_values

                sql = f"INSERT INTO {table} ({columns}) VALUES %s{suffix}"
                execute_values(cursor.cursor, sql, chunk, page_size=CHUNK)
            else:
                marks = ", ".join(["%s"] * len(chunk[0]))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}){suffix}", chunk)


def save_tasks(tasks: list[Task], fields: list[str]) -> None:
    """Write `fields` of each task: PostgreSQL, one UPDATE ... FROM (VALUES ...) per chunk;
    SQLite, one UPDATE per row through executemany (in-process, no round trips)."""
    if not tasks:
        return
    columns = [Task._meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table = quote(Task._meta.db_table)
    rows = [[f.get_db_prep_save(getattr(task, f.attname), connection) for f in columns] + [task.pk] for task in tasks]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg2.extras import execute_values

            names = [f"c{i}" for i in range(len(columns))]
            assignments = ", ".join(
                f"{quote(f.column)} = v.{n}::{f.cast_db_type(connection)}" for f, n in zip(columns, names, strict=True)
            )
            sql = (
                f"UPDATE {table} SET {assignments} FROM (VALUES %s) AS v({', '.join(names)}, id) "
                f"WHERE {table}.{quote('id')} = v.id"
            )
            execute_values(cursor.cursor, sql, rows, page_size=CHUNK)
        else:
            assignments = ", ".join(f"{quote(f.column)} = %s" for f in columns)
            cursor.executemany(f"UPDATE {table} SET {assignments} WHERE {quote('id')} = %s", rows)
