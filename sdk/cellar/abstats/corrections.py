"""Checks and corrections around the comparisons: sample-ratio mismatch,
multiple testing (Holm, Benjamini–Hochberg) and winsorization."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

SRM_THRESHOLD = 0.001


def srm_p_value(observed: Sequence[float], weights: Sequence[float]) -> float:
    """χ² goodness of fit of the arms' unit counts to their weights (gbstats `check_srm`).

    Arms with weight ≤ 0 add nothing, but still count toward the degrees of freedom."""
    total = float(sum(observed))
    if not total or len(observed) < 2:
        return 1.0
    total_weight = float(sum(weights))
    x = 0.0
    for o, w in zip(observed, weights, strict=True):
        if w <= 0:
            continue
        e = w / total_weight * total
        x += (o - e) ** 2 / e
    return float(_st.chi2.sf(x, len(observed) - 1))


def srm_alert(observed: Sequence[float], weights: Sequence[float], threshold: float = SRM_THRESHOLD) -> bool:
    return srm_p_value(observed, weights) < threshold


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")[::-1]
    ranks = m - np.arange(m)  # rank of each sorted-descending p
    adjusted = np.minimum.accumulate(p[order] * m / ranks)
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def adjusted_interval(lift: float, adjusted_p: float, alpha: float = 0.05) -> tuple[float, float]:
    """A CI consistent with an adjusted p-value: sd' = |lift|/Φ⁻¹(1 − p/2) (GrowthBook)."""
    if adjusted_p >= 1.0 or lift == 0:
        return (-np.inf, np.inf)
    sd = abs(lift) / _st.norm.ppf(1 - adjusted_p / 2)
    half = _st.norm.ppf(1 - alpha / 2) * sd
    return (lift - half, lift + half)


def winsorize(values: Sequence[float], upper: float | None = 0.99, lower: float | None = None) -> np.ndarray:
    """Clip values at percentiles (linear interpolation, the same as PostgreSQL's
    percentile_cont), so a few extreme units cannot dominate a mean."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return arr
    hi = np.quantile(arr, upper) if upper is not None else np.inf
    lo = np.quantile(arr, lower) if lower is not None else -np.inf
    return np.clip(arr, lo, hi)
