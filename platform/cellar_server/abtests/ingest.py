"""Outcome events (from applications, `cellar.track`) and exposures (from serve), in batches.

Both are plain multi-row INSERT … ON CONFLICT DO NOTHING statements: an event id sent twice,
or a unit's second exposure in a phase, is counted once and never an error, and concurrent
senders never block each other on the same key. A batch is checked whole before anything is
written, so a bad row refuses the batch with every offending index named.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cellar_server.abtests.models import ABTest, Event, Exposure
from cellar_server.abtests.validation import NAME_RE
from cellar_server.core.exceptions import ServiceError

MAX_BATCH = 10_000
MAX_ERRORS_SHOWN = 20


def _time(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return now
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class BatchError(ServiceError):
    def __init__(self, code: str, message: str, errors: list[dict[str, Any]]):
        super().__init__(code, message)
        self.errors = errors


def _clean_events(events: Any) -> list[tuple[str, str, str, float, datetime]]:
    if not isinstance(events, list) or not events:
        raise ServiceError("invalid_events", 'Send {"events": [{"id", "unit_id", "name", "value", "at"}, ...]}.')
    if len(events) > MAX_BATCH:
        raise ServiceError("batch_too_large", f"At most {MAX_BATCH} events per request; split the batch.")
    now = timezone.now()
    rows: list[tuple[str, str, str, float, datetime]] = []
    errors: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        problem = None
        if not isinstance(e, dict):
            problem = "must be an object"
        else:
            event_id, unit, name, value = e.get("id"), e.get("unit_id"), e.get("name"), e.get("value", 1)
            at = _time(e.get("at"), now)
            if not isinstance(event_id, str | int) or isinstance(event_id, bool) or not 0 < len(str(event_id)) <= 100:
                problem = "'id' must be a unique string of 1-100 characters"
            elif not isinstance(unit, str | int) or isinstance(unit, bool) or not 0 < len(str(unit)) <= 200:
                problem = "'unit_id' must be a string of 1-200 characters"
            elif not isinstance(name, str) or not NAME_RE.match(name):
                problem = "'name' must be an event name like 'converted'"
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problem = f"'value' must be a finite number, not {value!r}"
            elif at is None:
                problem = "'at' must be an ISO 8601 time or epoch seconds"
            else:
                rows.append((str(event_id), str(unit), name, float(value), at))
        if problem:
            errors.append({"index": i, "message": problem})
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        first = shown[0]
        raise BatchError(
            "invalid_events",
            f"{len(errors)} of {len(events)} events are invalid (first: events[{first['index']}] {first['message']}); "
            "nothing was stored.",
            shown,
        )
    return rows


def _insert(table: str, columns: list[str], conflict: str, rows: list[tuple]) -> int:
    """One INSERT … ON CONFLICT DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    cols = ", ".join(columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg2.extras import execute_values

            execute_values(
                cursor.cursor,
                f"INSERT INTO {table} ({cols}) VALUES %s ON CONFLICT ({conflict}) DO NOTHING",
                rows,
                page_size=len(rows),
            )
            return cursor.cursor.rowcount
        marks = ", ".join(["%s"] * len(columns))
        inserted = 0
        for row in rows:
            cursor.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({conflict}) DO NOTHING", row)
            inserted += cursor.rowcount
        return inserted


@transaction.atomic
def events_ingest(*, test: ABTest, events: Any) -> dict[str, int]:
    """Store outcome events; duplicates (same id) are counted once. Events of units that were
    never exposed, or before exposure, are kept (the latter are CUPED's pre-period)."""
    rows = _clean_events(events)
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            unique.append(row)
    stored = _insert(
        Event._meta.db_table,
        ["team_id", "test_id", "event_id", "unit_id", "name", "value", "at"],
        "test_id, event_id",
        [(test.team_id, test.pk, *row) for row in unique],
    )
    return {"received": len(rows), "stored": stored, "duplicates": len(rows) - stored}


def exposures_ingest(*, records: Any) -> dict[str, int]:
    """Serve's outbox of first exposures: [{"test_id", "phase", "unit_id", "arm", "at"}]."""
    if not isinstance(records, list):
        raise ServiceError("invalid_records", 'Send {"records": [{"test_id", "phase", "unit_id", "arm", "at"}]}.')
    if len(records) > MAX_BATCH * 5:
        raise ServiceError("batch_too_large", f"At most {MAX_BATCH * 5} exposures per request.")
    now = timezone.now()
    ids = {r.get("test_id") for r in records if isinstance(r, dict)}
    tests = {
        t.pk: t
        for t in ABTest.all_teams.filter(
            pk__in=[i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
        ).prefetch_related("arms")
    }
    arm_counts = {pk: len(t.arms.all()) for pk, t in tests.items()}
    rows: dict[tuple[int, int, str], tuple] = {}
    skipped = 0
    for r in records:
        test = tests.get(r.get("test_id")) if isinstance(r, dict) else None
        at = _time(r.get("at"), now) if test else None
        arm, phase, unit = (r.get("arm"), r.get("phase"), r.get("unit_id")) if test else (None, None, None)
        if (
            test is None
            or test.status != ABTest.RUNNING
            or at is None
            or not isinstance(arm, int)
            or not 0 <= arm < arm_counts[test.pk]
            or phase != test.phase
            or not isinstance(unit, str | int)
            or not 0 < len(str(unit)) <= 200
        ):
            skipped += 1  # a stale phase or a stopped test: the serve process catches up on its next poll
            continue
        key = (test.pk, phase, str(unit))
        if key not in rows or rows[key][5] > at:
            rows[key] = (test.team_id, test.pk, phase, str(unit), arm, at)
    with transaction.atomic():
        stored = _insert(
            Exposure._meta.db_table,
            ["team_id", "test_id", "phase", "unit_id", "arm", "first_at"],
            "test_id, phase, unit_id",
            list(rows.values()),
        )
    return {"received": len(records), "stored": stored, "skipped": skipped}
