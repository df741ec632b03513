"""Parsing what people send: variants, weights, coverage and metric definitions → clear 400s."""

from __future__ import annotations

import math
import re
from typing import Any

from cellar_server.abtests.models import Metric
from cellar_server.core.exceptions import ServiceError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
WEIGHT_TOLERANCE = 1e-6
MAX_ARMS = 8
MAX_METRICS = 20


def number(value: Any, field: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ServiceError(
            "invalid_" + field.split("[")[0].split(".")[-1], f"'{field}' must be a number, not {value!r}."
        )
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ServiceError("invalid_" + field.split("[")[0].split(".")[-1], f"'{field}' must be {bounds}.")
    return float(value)


def weights(values: Any, n_arms: int) -> list[float]:
    if not isinstance(values, list) or len(values) != n_arms:
        raise ServiceError("invalid_weights", f"Give one weight per variant ({n_arms}), like [0.5, 0.5].")
    out = [number(w, f"weights[{i}]", low=0, high=1) for i, w in enumerate(values)]
    if abs(sum(out) - 1) > WEIGHT_TOLERANCE:
        raise ServiceError(
            "weights_must_sum_to_one",
            f"Variant weights must sum to 1; these sum to {sum(out):g}. Example: [0.5, 0.5] or [0.8, 0.2].",
        )
    if out[0] <= 0:
        raise ServiceError("invalid_weights", "The control needs a weight above 0.")
    return out


def variants(values: Any) -> list[tuple[str, float]]:
    """[{"version_id", "weight"}], control first → [(version_id, weight)]."""
    if not isinstance(values, list) or not 2 <= len(values) <= MAX_ARMS:
        raise ServiceError(
            "invalid_variants",
            f"Give 2 to {MAX_ARMS} variants, control first: "
            '[{"version_id": "12", "weight": 0.5}, {"version_id": "13", "weight": 0.5}].',
        )
    ids: list[str] = []
    raw_weights = []
    for i, v in enumerate(values):
        if not isinstance(v, dict) or not str(v.get("version_id", "")).strip():
            raise ServiceError("invalid_variants", f"variants[{i}] needs a 'version_id'.")
        version_id = str(v["version_id"]).strip()
        if version_id in ids:
            raise ServiceError("duplicate_variant", f"Version {version_id} appears twice; each variant is one version.")
        ids.append(version_id)
        raw_weights.append(v.get("weight", 1 / len(values)))
    return list(zip(ids, weights(raw_weights, len(values)), strict=True))


def metrics(values: Any) -> list[dict[str, Any]]:
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_METRICS:
        raise ServiceError(
            "invalid_metrics",
            'Give at least one metric, e.g. [{"name": "converted", "kind": "proportion", "role": "primary"}].',
        )
    out: list[dict[str, Any]] = []
    for i, m in enumerate(values):
        if not isinstance(m, dict):
            raise ServiceError("invalid_metrics", f"metrics[{i}] must be an object.")
        name = str(m.get("name", "")).strip()
        if not NAME_RE.match(name):
            raise ServiceError("invalid_metric_name", f"metrics[{i}].name must be an event name like 'revenue'.")
        kind = m.get("kind", Metric.MEAN)
        if kind not in dict(Metric.KINDS):
            raise ServiceError("invalid_metric_kind", f"metrics[{i}].kind must be proportion, mean or ratio.")
        role = m.get("role", Metric.SECONDARY)
        if role not in dict(Metric.ROLES):
            raise ServiceError("invalid_metric_role", f"metrics[{i}].role must be primary, secondary or guardrail.")
        denominator = str(m.get("denominator", "") or "").strip()
        if kind == Metric.RATIO and not NAME_RE.match(denominator):
            raise ServiceError("invalid_denominator", f"Ratio metric '{name}' needs a 'denominator' event name.")
        winsorize = m.get("winsorize_percentile")
        if winsorize is not None:
            if kind != Metric.MEAN:
                raise ServiceError("invalid_winsorize", "Winsorization applies to mean metrics only.")
            winsorize = number(winsorize, f"metrics[{i}].winsorize_percentile", low=0.5, high=1)
        if any(o["name"] == name for o in out):
            raise ServiceError("duplicate_metric", f"The metric '{name}' is defined twice.")
        out.append(
            {
                "name": name,
                "kind": kind,
                "role": role,
                "denominator": denominator if kind == Metric.RATIO else "",
                "higher_is_better": bool(m.get("higher_is_better", True)),
                "window_hours": number(m.get("window_hours", 72), f"metrics[{i}].window_hours", low=0.001),
                "winsorize_percentile": winsorize,
                "cuped": bool(m.get("cuped", kind != Metric.RATIO)) and kind != Metric.RATIO,
                "position": i,
            }
        )
    if sum(1 for m in out if m["role"] == Metric.PRIMARY) != 1:
        raise ServiceError("one_primary_metric", "Exactly one metric must have role 'primary'.")
    out.sort(key=lambda m: (m["role"] != Metric.PRIMARY, m["position"]))
    for i, m in enumerate(out):
        m["position"] = i
    return out
