"""Downsample a metric history for drawing, keeping its shape: every spike and dip survives.

The step range is cut into equal buckets; each bucket keeps its first, lowest,
highest and last point, in step order (M4 aggregation, as line-chart renderers
call it). A line drawn through those points covers the same pixels as one drawn
through every point, so a 100,000-step history draws as ~1,000 points without
losing its minimum, its maximum or where the curve enters and leaves each bucket.

Pure functions over plain sequences: the slicing, `min`, `max` and `index`
calls run in C, so a million points take tens of milliseconds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

DEFAULT_MAX_POINTS = 1000
POINTS_PER_BUCKET = 4  # first, min, max, last


def downsample(
    steps: Sequence[int], values: Sequence[float], max_points: int = DEFAULT_MAX_POINTS
) -> tuple[list[int], list[float]]:
    """At most `max_points` of the points (`steps` ascending, ties allowed), as a subsequence in step order.

    Histories that already fit come back whole. Steps that are all equal (a metric
    logged without steps) are bucketed by position instead, so they still thin out.
    """
    count = len(steps)
    if count != len(values):
        raise ValueError(f"steps and values differ in length ({count} != {len(values)})")
    if count <= max_points:
        return list(steps), list(values)
    buckets = max(1, max_points // POINTS_PER_BUCKET)
    positions = steps if steps[-1] != steps[0] else range(count)
    keep = _bucket_extremes(positions, values, buckets)
    return [steps[i] for i in keep], [values[i] for i in keep]


def _bucket_extremes(positions: Sequence[int], values: Sequence[float], buckets: int) -> list[int]:
    lo = positions[0]
    span = positions[-1] - lo + 1
    count = len(positions)
    keep: list[int] = []
    start = 0
    for bucket in range(1, buckets + 1):
        # Bucket b-1 holds the positions p with (p - lo) * buckets // span == b - 1, i.e. p below this bound.
        end = count if bucket == buckets else bisect_left(positions, lo + -(-bucket * span // buckets), start)
        if end <= start:
            continue
        chunk = values[start:end]
        lowest = start + chunk.index(min(chunk))
        highest = start + chunk.index(max(chunk))
        keep.extend(sorted({start, lowest, highest, end - 1}))
        start = end
    return keep


def points_per_curve(curves: int, *, budget: int, floor: int, ceiling: int = DEFAULT_MAX_POINTS) -> int:
    """Share a chart's point budget among its curves: many overlaid runs each get fewer points."""
    return max(floor, min(ceiling, budget // max(1, curves)))
