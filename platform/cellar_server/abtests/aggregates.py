"""Per-arm sufficient statistics computed in the database and stored as `ArmAggregate` rows.

For each metric the SQL first folds each exposed unit's events into one value per unit (y: the
events within the attribution window after its first exposure; x: the pre-period covariate for
CUPED, or the denominator of a ratio), then sums n, Σy, Σy², Σx, Σx², Σxy per arm and per
exposure-time bucket. Buckets are additive, so the cumulative-lift chart and the analysis are
prefix sums over a few rows. Events of units never exposed simply find no unit to join.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from cellar_server.abtests.models import ABTest, ArmAggregate, Event, Exposure, Metric

PRE_PERIOD = timedelta(days=14)  # CUPED covariate: events in the 14 days before exposure (GrowthBook's default)


def grain_for(test: ABTest, now: datetime | None = None) -> str:
    """Bucket width for the timeline: minutes for a short test, then hours, then days."""
    age = (now or timezone.now()) - (test.started_at or test.created_at)
    if age <= timedelta(hours=3):
        return "minute"
    if age <= timedelta(days=4):
        return "hour"
    return "day"


_PER_UNIT = """
WITH u AS (
    SELECT unit_id, arm, first_at FROM {exposure} WHERE test_id = %(test)s AND phase = %(phase)s
), per_unit AS (
    SELECT u.arm, u.first_at,
           COALESCE(SUM(e.value) FILTER (WHERE e.name = %(name)s AND e.at >= u.first_at
                                         AND e.at < u.first_at + %(window)s), 0) AS y,
           COALESCE(SUM(e.value) FILTER (WHERE {x_filter}), 0) AS x
    FROM u LEFT JOIN {event} e
      ON e.test_id = %(test)s AND e.unit_id = u.unit_id AND e.name IN (%(name)s, %(other)s)
    GROUP BY u.unit_id, u.arm, u.first_at
)"""

_X_PRE = "e.name = %(name)s AND e.at < u.first_at AND e.at >= u.first_at - %(pre)s"
_X_DEN = "e.name = %(other)s AND e.at >= u.first_at AND e.at < u.first_at + %(window)s"


def _metric_sql(metric: Metric) -> str:
    x_filter = _X_DEN if metric.kind == Metric.RATIO else (_X_PRE if metric.cuped else "FALSE")
    head = _PER_UNIT.format(exposure=Exposure._meta.db_table, event=Event._meta.db_table, x_filter=x_filter)
    if metric.kind == Metric.PROPORTION:
        values = "SELECT arm, first_at, (y > 0)::int::float AS y, (x > 0)::int::float AS x FROM per_unit"
    elif metric.winsorize_percentile:
        # Cap per-unit values at the percentile of the non-zero ones (a sparse metric's cap is not 0;
        # GrowthBook #1912), the pre-period capped the same way.
        values = """SELECT arm, first_at, LEAST(y, cap.v) AS y, LEAST(x, cap.v) AS x FROM per_unit,
                  (SELECT COALESCE(percentile_cont(%(pct)s) WITHIN GROUP (ORDER BY y), 0) AS v
                   FROM per_unit WHERE y <> 0) cap"""
    else:
        values = "SELECT arm, first_at, y, x FROM per_unit"
    return (
        head
        + f", v AS ({values})"
        + """
SELECT arm, date_trunc(%(grain)s, first_at) AS bucket, COUNT(*), SUM(y), SUM(y * y), SUM(x), SUM(x * x), SUM(x * y)
FROM v GROUP BY arm, bucket"""
    )


_EXPOSURES_SQL = f"""
SELECT arm, date_trunc(%(grain)s, first_at) AS bucket, COUNT(*), 0, 0, 0, 0, 0
FROM {Exposure._meta.db_table} WHERE test_id = %(test)s AND phase = %(phase)s GROUP BY arm, bucket"""


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def aggregates_refresh(*, test: ABTest, phase: int | None = None) -> int:
    """Recompute and replace one phase's aggregates (PostgreSQL). Returns the rows written."""
    phase = phase or test.phase
    grain = grain_for(test)
    base = {"test": test.pk, "phase": phase, "grain": grain}
    computed: list[tuple[str, tuple]] = []
    metrics = list(Metric.all_teams.filter(test=test))
    if connection.vendor == "postgresql":
        computed += [("", row) for row in _rows(_EXPOSURES_SQL, base)]
        for metric in metrics:
            params = {
                **base,
                "name": metric.name,
                "other": metric.denominator or metric.name,
                "window": timedelta(hours=metric.window_hours),
                "pre": PRE_PERIOD,
                "pct": metric.winsorize_percentile,
            }
            computed += [(metric.name, row) for row in _rows(_metric_sql(metric), params)]
    else:
        from cellar_server.abtests.aggregates_python import per_arm_rows

        computed = per_arm_rows(test=test, phase=phase, metrics=metrics, grain=grain, pre_period=PRE_PERIOD)
    objs = [
        ArmAggregate(
            team_id=test.team_id,
            test=test,
            phase=phase,
            metric=name,
            arm=arm,
            bucket=bucket,
            n=n,
            y_sum=y or 0,
            y_sum_sq=yy or 0,
            x_sum=x or 0,
            x_sum_sq=xx or 0,
            xy_sum=xy or 0,
        )
        for name, (arm, bucket, n, y, yy, x, xx, xy) in computed
    ]
    with transaction.atomic():
        ArmAggregate.all_teams.filter(test=test, phase=phase).delete()
        ArmAggregate.all_teams.bulk_create(objs, batch_size=2000)
        ABTest.all_teams.filter(pk=test.pk).update(refreshed_at=timezone.now())
    return len(objs)
