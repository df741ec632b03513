"""Reference profile of the training inputs, stored with a model version for drift monitoring.

Shape (JSON, version 1):

    {"version": 1, "n_rows": 1000, "features": {
        "age": {"kind": "numeric", "count": 990, "null_fraction": 0.01,
                "mean": 41.2, "std": 12.0, "min": 18.0, "max": 90.0,
                "quantiles": {"0.01": …, "0.05": …, "0.25": …, "0.5": …, "0.75": …, "0.95": …, "0.99": …},
                "bins": {"edges": [e1, …, e9], "counts": [c0, …, c9]}},
        "city": {"kind": "categorical", "count": 1000, "null_fraction": 0.0, "distinct": 31,
                 "top": {"paris": 400, …}, "other": 120}}}

Numeric bins are fixed at registration from the reference's deciles: `edges` are the interior
cut points, so bin 0 is (-inf, e1], bin i is (e_i, e_{i+1}] and the last bin is (e_last, +inf).
Counts cover non-null values only. A live sample is bucketed with the same edges
(`numpy.searchsorted(edges, x, side="left")`) and compared bin by bin (PSI). Categorical
features keep their TOP_VALUES most frequent values; the rest count as `other`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

PROFILE_VERSION = 1
N_BINS = 10
TOP_VALUES = 20
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _columns(data: Any) -> dict[str, list]:
    if hasattr(data, "columns") and hasattr(data, "dtypes"):
        return {str(c): data[c].tolist() for c in data.columns}
    if isinstance(data, Mapping):
        return {str(k): v.tolist() if hasattr(v, "tolist") else list(v) for k, v in data.items()}
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        names: dict[str, None] = {}
        for row in data:
            names.update(dict.fromkeys(row))
        return {str(n): [row.get(n) for row in data] for n in names}
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) == 2:
        return {f"x{i}": data[:, i].tolist() for i in range(shape[1])}
    raise TypeError(
        f"cannot profile {type(data).__name__}: pass a DataFrame, a dict of columns, records or a 2-D array"
    )


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(values: list[float], n_total: int) -> dict[str, Any]:
    import numpy as np

    array = np.asarray(values, dtype="float64")
    array = array[np.isfinite(array)]
    out: dict[str, Any] = {"kind": "numeric", "count": int(array.size), "null_fraction": 1 - array.size / n_total}
    if array.size == 0:
        out.update(mean=None, std=None, min=None, max=None, quantiles={}, bins={"edges": [], "counts": [0]})
        return out
    quantiles = np.quantile(array, QUANTILES)
    edges = np.unique(np.quantile(array, [i / N_BINS for i in range(1, N_BINS)]))
    counts = np.bincount(np.searchsorted(edges, array, side="left"), minlength=edges.size + 1)
    out.update(
        mean=float(array.mean()),
        std=float(array.std()),
        min=float(array.min()),
        max=float(array.max()),
        quantiles={str(q): float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        bins={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    )
    return out


def _categorical(values: list[Any], n_total: int) -> dict[str, Any]:
    counts = Counter(str(v) for v in values)
    top = dict(counts.most_common(TOP_VALUES))
    return {
        "kind": "categorical",
        "count": len(values),
        "null_fraction": 1 - len(values) / n_total if n_total else 0.0,
        "distinct": len(counts),
        "top": top,
        "other": len(values) - sum(top.values()),
    }


def reference_profile(data: Any) -> dict[str, Any]:
    """Per-feature histogram and summary statistics of `data` (DataFrame, columns, records, 2-D array)."""
    columns = _columns(data)
    n_rows = max((len(v) for v in columns.values()), default=0)
    features: dict[str, Any] = {}
    for name, raw in columns.items():
        present = [v for v in raw if not _is_null(v)]
        if n_rows == 0:
            features[name] = {"kind": "numeric", "count": 0, "null_fraction": 0.0}
        elif present and all(_is_number(v) for v in present):
            features[name] = _numeric([float(v) for v in present], n_rows)
        else:
            features[name] = _categorical(present, n_rows)
    return {"version": PROFILE_VERSION, "n_rows": n_rows, "features": features}
