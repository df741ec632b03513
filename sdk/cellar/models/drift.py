"""Monitoring statistics shared by the serve process and the control plane (no Django, no numpy).

Population stability index (PSI) of a feature's recent inputs against the reference profile
stored when the model version was registered:

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over the profile's bins, where e_i is the reference share of bin i and a_i the recent share.
Empty bins get a share of EPSILON before the log (the usual smoothing; without it one empty bin
makes PSI infinite). Common reading: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant
(the default warning threshold).

Numeric features are bucketed on the profile's fixed interior cut points (bin 0 is
(-inf, e1], the last (e_last, +inf)), exactly as `cellar.models.profile` counted the reference.
Missing values form one more bin when the reference or the sample has any. Categorical features
compare the profile's top values plus one "other" bin.

Latency histograms: serve counts request latencies into fixed log-spaced buckets
(LATENCY_EDGES_MS) per minute; the control plane adds counts and reads percentiles from them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

EPSILON = 1e-4
OTHER = "__other__"
NULL = "__null__"

# 0.05 ms .. ~60 s, 12 buckets per decade (each edge ~21% above the previous).
LATENCY_EDGES_MS: tuple[float, ...] = tuple(round(0.05 * 10 ** (i / 12), 6) for i in range(74))


def psi(expected: Sequence[float], actual: Sequence[float], *, epsilon: float = EPSILON) -> float:
    """PSI of two histograms over the same bins (counts or shares; each is normalized)."""
    if len(expected) != len(actual):
        raise ValueError(f"histograms differ in length: {len(expected)} vs {len(actual)}")
    total_e, total_a = float(sum(expected)), float(sum(actual))
    if total_e <= 0 or total_a <= 0:
        raise ValueError("a histogram is empty")
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        share_e = max(e / total_e, epsilon)
        share_a = max(a / total_a, epsilon)
        value += (share_a - share_e) * math.log(share_a / share_e)
    return value


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def bin_numeric(edges: Sequence[float], values: Iterable[Any]) -> tuple[list[int], int]:
    """Counts per bin of the interior cut points `edges` (len(edges) + 1 bins), plus missing values.

    Bin 0 is (-inf, e1], bin i is (e_i, e_{i+1}], the last is (e_last, +inf): the same bucketing
    as the reference profile (numpy.searchsorted(edges, x, side="left")).
    """
    counts = [0] * (len(edges) + 1)
    missing = 0
    for value in values:
        if _is_missing(value) or isinstance(value, bool | str):
            missing += 1
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            missing += 1
            continue
        if math.isnan(number):
            missing += 1
            continue
        counts[bisect.bisect_left(edges, number)] += 1
    return counts, missing


def _categorical_bins(feature: Mapping[str, Any], values: Sequence[Any]) -> tuple[list[float], list[float], int]:
    top = feature.get("top") or {}
    keys = [str(k) for k in top]
    expected = [float(top[k]) for k in top] + [float(feature.get("other") or 0)]
    index = {k: i for i, k in enumerate(keys)}
    actual = [0.0] * (len(keys) + 1)
    missing = 0
    for value in values:
        if _is_missing(value):
            missing += 1
            continue
        actual[index.get(str(value), len(keys))] += 1
    return expected, actual, missing


def feature_psi(feature: Mapping[str, Any], values: Sequence[Any], *, epsilon: float = EPSILON) -> float:
    """PSI of `values` against one feature of a reference profile (cellar.models.profile's shape):
    numeric {"bins": {"edges", "counts"}} or categorical {"top": {value: count}, "other"}."""
    if feature.get("kind") == "categorical":
        expected, actual, missing = _categorical_bins(feature, values)
    else:
        bins = feature.get("bins") or {}
        edges = [float(e) for e in bins.get("edges", [])]
        expected = [float(c) for c in bins.get("counts", [])]
        if len(expected) != len(edges) + 1:
            raise ValueError("the profile's bins need len(counts) == len(edges) + 1")
        counts, missing = bin_numeric(edges, values)
        actual = [float(c) for c in counts]
    null_fraction = float(feature.get("null_fraction") or 0.0)
    if null_fraction > 0 or missing:
        # Counts cover the reference's non-null rows; its nulls become one more bin.
        total_e = sum(expected)
        nulls_e = total_e * null_fraction / (1 - null_fraction) if null_fraction < 1 else 1.0
        expected = [*expected, nulls_e]
        actual = [*actual, float(missing)]
    return psi(expected, actual, epsilon=epsilon)


def profile_features(profile: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The per-feature part of a reference profile ({"features": {...}} or the mapping itself)."""
    if not profile:
        return {}
    features = profile.get("features", profile)
    if isinstance(features, list):  # [{"name": ..., ...}, ...]
        return {f["name"]: f for f in features if isinstance(f, dict) and "name" in f}
    return {name: f for name, f in features.items() if isinstance(f, Mapping)}


def drift_report(
    profile: Mapping[str, Any] | None,
    rows: Sequence[Mapping[str, Any]],
    *,
    threshold: float = 0.2,
    epsilon: float = EPSILON,
) -> list[dict[str, Any]]:
    """Per feature of the profile: PSI of `rows` (input records) and whether it passes the threshold."""
    report = []
    for name, feature in profile_features(profile).items():
        values = [row.get(name) for row in rows]
        try:
            value = feature_psi(feature, values, epsilon=epsilon) if rows else None
        except (ValueError, KeyError, TypeError) as exc:
            report.append({"feature": name, "psi": None, "warning": False, "error": str(exc)})
            continue
        report.append({"feature": name, "psi": value, "warning": value is not None and value > threshold, "error": ""})
    return report


def latency_bucket(ms: float) -> int:
    """Index of the latency bucket for `ms` (len(LATENCY_EDGES_MS) + 1 buckets)."""
    return bisect.bisect_left(LATENCY_EDGES_MS, ms)


def latency_percentile(hist: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, as the upper edge of the bucket that holds it."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return LATENCY_EDGES_MS[min(index, len(LATENCY_EDGES_MS) - 1)]
    return LATENCY_EDGES_MS[-1]


def merge_hist(a: Sequence[int], b: Sequence[int]) -> list[int]:
    size = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(size)]
