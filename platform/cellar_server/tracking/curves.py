"""Metric curves for charts, from a pyramid of step-bucket summaries kept at write time.

Each logged point updates one summary per width in WIDTHS: the bucket's first,
last, lowest and highest points (NaN points are not drawn and not summarized).
The updates merge (earlier first, later last, lower min, higher max), so a
retried batch changes nothing. A chart then reads, per run, the finest width
whose buckets' corners fit its point budget — about a thousand rows for a 100-run
chart of 10,000-step histories — already thinned by the same M4 rule as raw
histories (tracking/downsample.py). Lowest and highest points survive at their exact steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from cellar_server.tracking.downsample import downsample
from cellar_server.tracking.models import LatestMetric, Metric, MetricBucket

# Powers of 4 from 256: a chart finds a width whose buckets fill its budget within a factor of 4,
# and a 1000-point batch touches about ten summary rows per key. (Width 64 was dropped: it made
# up 60% of the rows each batch wrote, and served only charts of one to five runs with 4,000 to
# 16,000 steps.) Histories too short for the finest width to help are read raw: those under
# RAW_FACTOR × the per-curve budget, and those of charts whose runs add up to at most RAW_POINTS
# points (a single run's chart draws up to 16,000 steps from every point).
WIDTHS = (256, 1024, 4096, 16384, 65536)
RAW_FACTOR = 4
RAW_POINTS = 16_000
POINTS_PER_BUCKET = 4

_COLUMNS = (
    "(run_id, key, width, bucket, first_step, first_value, last_step, last_value,"
    " min_step, min_value, max_step, max_value)"
)
# The SQL types of a summary row's columns, in _COLUMNS order (for PostgreSQL's unnest).
ROW_TYPES = ("int8", "varchar", "int4", "int8", "int8", "float8", "int8", "float8", "int8", "float8", "int8", "float8")


def _merge(column: str, condition: str) -> str:
    return f"{column} = CASE WHEN {condition} THEN excluded.{column} ELSE tracking_metricbucket.{column} END"


# `{source}` is the rows: VALUES on SQLite, SELECT * FROM unnest(…) on PostgreSQL (services/bulk.py).
UPSERT_BUCKETS = (
    f"INSERT INTO tracking_metricbucket {_COLUMNS} {{source}} "
    "ON CONFLICT (run_id, key, width, bucket) DO UPDATE SET "
    + ", ".join(
        [
            _merge("first_step", "excluded.first_step < tracking_metricbucket.first_step"),
            _merge("first_value", "excluded.first_step < tracking_metricbucket.first_step"),
            _merge("last_step", "excluded.last_step > tracking_metricbucket.last_step"),
            _merge("last_value", "excluded.last_step > tracking_metricbucket.last_step"),
            _merge("min_step", "excluded.min_value < tracking_metricbucket.min_value"),
            _merge("min_value", "excluded.min_value < tracking_metricbucket.min_value"),
            _merge("max_step", "excluded.max_value > tracking_metricbucket.max_value"),
            _merge("max_value", "excluded.max_value > tracking_metricbucket.max_value"),
        ]
    )
)
# The CASE conditions read the old values, so every column is merged against the row as it was.


def bucket_rows(run_id: int, points: Iterable[tuple[str, float, int]]) -> list[tuple]:
    """Summary rows for (key, value, step) points, one per (key, width, bucket) they touch.

    The finest width is computed from the points; each coarser one by merging the finer
    summaries (a handful per batch), so the cost is one pass over the points."""
    level: dict[tuple[str, int], list] = {}
    finest = WIDTHS[0]
    for key, value, step in points:  # the one pass over every point: merged inline, no call per point
        slot = (key, step // finest)
        s = level.get(slot)
        if s is None:
            level[slot] = [step, value, step, value, step, value, step, value]
            continue
        if step < s[0]:
            s[0], s[1] = step, value
        if step > s[2]:
            s[2], s[3] = step, value
        if value < s[5]:
            s[4], s[5] = step, value
        if value > s[7]:
            s[6], s[7] = step, value
    rows = [(run_id, key, finest, bucket, *s) for (key, bucket), s in level.items()]
    for finer, width in zip(WIDTHS, WIDTHS[1:], strict=False):
        coarser: dict[tuple[str, int], list] = {}
        factor = width // finer
        for (key, bucket), s in level.items():
            slot = (key, bucket // factor)
            c = coarser.get(slot)
            if c is None:
                coarser[slot] = list(s)
                continue
            if s[0] < c[0]:
                c[0], c[1] = s[0], s[1]
            if s[2] > c[2]:
                c[2], c[3] = s[2], s[3]
            if s[5] < c[5]:
                c[4], c[5] = s[4], s[5]
            if s[7] > c[7]:
                c[6], c[7] = s[6], s[7]
        rows += [(run_id, key, width, bucket, *c) for (key, bucket), c in coarser.items()]
        level = coarser
    return rows


def write_bucket_rows(cursor, rows: list[tuple]) -> None:
    """Merge summary rows (from bucket_rows) into the stored ones, in the current transaction.
    `cursor` is unused; the rows go through services/bulk.py, one statement per 1000 rows."""
    from cellar_server.tracking.services import bulk

    for start in range(0, len(rows), 1000):
        bulk.upsert_rows(UPSERT_BUCKETS, rows[start : start + 1000], ROW_TYPES)


def width_for(span: int, per_curve: int, curves: int = 1) -> int:
    """The finest summary width whose buckets' corners (4 each) fit the budget; 1 means raw points.
    `curves` is how many runs share the chart."""
    if span < RAW_FACTOR * per_curve or span * curves <= RAW_POINTS:
        return 1
    for width in WIDTHS:
        if (span // width + 1) * POINTS_PER_BUCKET <= per_curve:
            return width
    return WIDTHS[-1]


def load_curves(
    run_ids: list[int], key: str, per_curve: int, *, spans: dict[int, int] | None = None
) -> tuple[dict[int, tuple[list, list]], int]:
    """Each run's curve for `key` as (steps, values), at most `per_curve` points; and how many rows were read.

    `spans` (run → its latest step) saves a query when the caller already has the latest points.
    """
    if spans is None:
        spans = dict(LatestMetric.objects.filter(run_id__in=run_ids, key=key).values_list("run_id", "step"))
    by_width: dict[int, list[int]] = defaultdict(list)
    for run_id, top_step in spans.items():
        by_width[width_for(max(top_step, 0), per_curve, len(spans))].append(run_id)
    curves: dict[int, tuple[list, list]] = {}
    rows_read = 0
    for width, ids in by_width.items():
        if width == 1:
            rows = Metric.objects.filter(run_id__in=ids, key=key, is_nan=False).order_by("run_id", "step", "timestamp")
            points: dict[int, list[tuple[int, float]]] = defaultdict(list)
            for run_id, step, value in rows.values_list("run_id", "step", "value"):
                points[run_id].append((step, value))
                rows_read += 1
        else:
            points = defaultdict(list)
            summaries = MetricBucket.objects.filter(run_id__in=ids, key=key, width=width).order_by("run_id", "bucket")
            for run_id, *s in summaries.values_list(
                "run_id",
                "first_step",
                "first_value",
                "min_step",
                "min_value",
                "max_step",
                "max_value",
                "last_step",
                "last_value",
            ):
                rows_read += 1
                corners = sorted({(s[0], s[1]), (s[2], s[3]), (s[4], s[5]), (s[6], s[7])})
                points[run_id].extend(corners)
        for run_id, pairs in points.items():
            curves[run_id] = downsample([p[0] for p in pairs], [p[1] for p in pairs], per_curve)
    return curves, rows_read
