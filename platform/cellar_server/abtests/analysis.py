"""The analysis of one phase from its stored aggregates, and the decision rule.

Decision ("ready to promote"): the primary metric's always-valid (sequential) interval excludes
zero in the challenger's favour, no guardrail's sequential interval is entirely on the bad side,
and the sample-ratio check passes (p ≥ 0.001). With several challengers the sequential intervals
use α/(k−1) (Bonferroni) so the chance of promoting any null challenger stays ≤ α. Fixed-horizon
Welch and Bayesian figures are shown alongside, labelled, never used for the decision.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cellar import abstats
from cellar_server.abtests.models import ABTest, ArmAggregate, Metric

MIN_UNITS_PER_ARM = 100

METHOD_TEXT = (
    "Decisions use always-valid sequential confidence intervals (GrowthBook's asymptotic confidence "
    "sequence, N* = {n_star:g}), so results may be checked at any time without inflating false positives. "
    "Frequentist: the fixed-horizon Welch t-test (valid only at a pre-planned end) with Benjamini–Hochberg "
    "adjusted p-values across secondary metrics. Bayesian: a normal posterior on the relative lift with a flat "
    "prior: 'chance to beat control' is a probability, not 1 − p. Lifts are relative, (treatment − control) / "
    "control, with delta-method intervals; CUPED uses 14 days of pre-exposure events."
)


def _stat(metric: Metric | None, s: list[float]):
    n, y, yy, x, xx, xy = s
    n = int(n)
    if metric is None:
        return None
    if metric.kind == Metric.RATIO:
        return abstats.Ratio(n=n, m_sum=y, m_sum_squares=yy, d_sum=x, d_sum_squares=xx, m_d_sum=xy)
    post = abstats.Proportion(n=n, sum=y) if metric.kind == Metric.PROPORTION else abstats.SampleMean(n, y, yy)
    if metric.cuped and x > 0:
        pre = abstats.Proportion(n=n, sum=x) if metric.kind == Metric.PROPORTION else abstats.SampleMean(n, x, xx)
        return abstats.RegressionAdjusted(post=post, pre=pre, post_pre_sum=xy)
    return post


def _sums(rows: list[ArmAggregate]) -> tuple[dict, dict]:
    """{(metric, arm): [n, Σy, Σy², Σx, Σx², Σxy]} in total and per bucket."""
    total: dict = defaultdict(lambda: [0.0] * 6)
    by_bucket: dict = defaultdict(lambda: defaultdict(lambda: [0.0] * 6))
    for r in rows:
        values = (r.n, r.y_sum, r.y_sum_sq, r.x_sum, r.x_sum_sq, r.xy_sum)
        for target in (total[(r.metric, r.arm)], by_bucket[(r.metric, r.arm)][r.bucket]):
            for i, v in enumerate(values):
                target[i] += v
    return total, by_bucket


def _favourable(c: abstats.Comparison, higher_is_better: bool) -> int:
    """+1 when the interval is entirely on the good side, −1 entirely on the bad side, else 0."""
    lo, hi = c.ci
    if c.error:
        return 0
    if lo > 0:
        return 1 if higher_is_better else -1
    if hi < 0:
        return -1 if higher_is_better else 1
    return 0


def analyse(*, test: ABTest, phase: int | None = None, with_timeline: bool = True) -> dict[str, Any]:
    phase = phase or test.phase
    arms = list(test.arms.all())
    metrics = list(test.metrics.all())
    rows = list(ArmAggregate.all_teams.filter(test=test, phase=phase))
    total, by_bucket = _sums(rows)
    phase_obj = test.phases.filter(number=phase).first()
    weights = list(phase_obj.weights) if phase_obj else [a.weight for a in arms]
    units = [int(total[("", i)][0]) if ("", i) in total else 0 for i in range(len(arms))]
    srm_p = abstats.srm_p_value(units, weights)
    challengers = len(arms) - 1
    decision_alpha = test.alpha / max(challengers, 1)

    metric_out = []
    for metric in metrics:
        stats = [_stat(metric, total.get((metric.name, i), [0.0] * 6)) for i in range(len(arms))]
        comparisons = []
        for i in range(1, len(arms)):
            seq = abstats.sequential(stats[0], stats[i], alpha=decision_alpha, n_star=test.sequential_n_star)
            fixed = abstats.welch(stats[0], stats[i], alpha=test.alpha)
            bayes = abstats.bayesian(stats[0], stats[i], alpha=test.alpha).as_dict()
            if not metric.higher_is_better and bayes["chance_to_win"] is not None:
                # an "inverse" metric wins when it goes down (gbstats' inverse flag)
                bayes["chance_to_win"] = 1 - bayes["chance_to_win"]
                bayes["risk"] = bayes["risk"][::-1]
            comparisons.append(
                {
                    "arm": arms[i].key,
                    "sequential": seq.as_dict(),
                    "frequentist": fixed.as_dict(),
                    "bayesian": bayes,
                    "verdict": _favourable(seq, metric.higher_is_better),
                }
            )
        metric_out.append(
            {
                "name": metric.name,
                "kind": metric.kind,
                "role": metric.role,
                "higher_is_better": metric.higher_is_better,
                "cuped": metric.cuped,
                "window_hours": metric.window_hours,
                "arms": [
                    {"key": a.key, "n": s.n, "mean": s.unadjusted_mean if s.n else None}
                    for a, s in zip(arms, stats, strict=True)
                ],
                "comparisons": comparisons,
            }
        )
    _adjust_secondaries(metric_out, len(arms) - 1)
    result = {
        "test_id": test.pk,
        "phase": phase,
        "status": test.status,
        "shadow": test.shadow,
        "refreshed_at": test.refreshed_at.isoformat() if test.refreshed_at else None,
        "method": METHOD_TEXT.format(n_star=test.sequential_n_star),
        "arms": [
            {"key": a.key, "version_id": a.version_id, "weight": w, "units": u}
            for a, w, u in zip(arms, weights, units, strict=True)
        ],
        "srm": {"p_value": srm_p, "alert": srm_p < abstats.SRM_THRESHOLD, "threshold": abstats.SRM_THRESHOLD},
        "metrics": metric_out,
    }
    result["decision"] = decide(result, test)
    if with_timeline:
        result["timeline"] = _timeline(test, arms, metrics, by_bucket, decision_alpha)
    return result


def _adjust_secondaries(metric_out: list[dict], challengers: int) -> None:
    """Across secondary metrics, per challenger: Benjamini–Hochberg (`adjusted_p_value`, shown) and
    Holm (`holm_p_value`, family-wise); guardrails and the primary stay unadjusted, as GrowthBook."""
    for j in range(challengers):
        secondary = [m for m in metric_out if m["role"] == Metric.SECONDARY]
        ps = [m["comparisons"][j]["frequentist"]["p_value"] for m in secondary]
        for m, bh, holm in zip(secondary, abstats.benjamini_hochberg(ps), abstats.holm(ps), strict=True):
            m["comparisons"][j]["frequentist"]["adjusted_p_value"] = bh
            m["comparisons"][j]["frequentist"]["holm_p_value"] = holm


def decide(result: dict[str, Any], test: ABTest) -> dict[str, Any]:
    if test.shadow:
        return {"state": "shadow", "winner": None, "summary": "Shadow mode compares outputs, not outcomes."}
    if result["srm"]["alert"]:
        return {
            "state": "srm_failed",
            "winner": None,
            "summary": f"Sample ratio mismatch (p = {result['srm']['p_value']:.2g}): assignment or logging is broken.",
        }
    if min((a["units"] for a in result["arms"]), default=0) < MIN_UNITS_PER_ARM:
        return {"state": "collecting", "winner": None, "summary": f"Fewer than {MIN_UNITS_PER_ARM} units in an arm."}
    primary = next(m for m in result["metrics"] if m["role"] == Metric.PRIMARY)
    guardrails = [m for m in result["metrics"] if m["role"] == Metric.GUARDRAIL]
    candidates = []
    failed_guardrails: list[str] = []
    for j, comp in enumerate(primary["comparisons"]):
        bad = [g["name"] for g in guardrails if g["comparisons"][j]["verdict"] < 0]
        if comp["verdict"] > 0 and not bad:
            candidates.append((comp["sequential"]["lift"] * (1 if primary["higher_is_better"] else -1), comp["arm"]))
        failed_guardrails += [f"{comp['arm']}: {name}" for name in bad]
    if candidates:
        winner = max(candidates)[1]
        return {"state": "ready", "winner": winner, "summary": f"'{winner}' beats control on {primary['name']}."}
    if failed_guardrails:
        return {
            "state": "guardrail_failed",
            "winner": None,
            "summary": "A guardrail is significantly worse (" + ", ".join(failed_guardrails) + ").",
        }
    if primary["comparisons"] and all(c["verdict"] < 0 for c in primary["comparisons"]):
        return {"state": "control_better", "winner": None, "summary": "Every challenger is worse than control."}
    return {"state": "inconclusive", "winner": None, "summary": "No significant difference on the primary metric yet."}


def _timeline(test, arms, metrics, by_bucket, alpha) -> dict[str, Any]:
    """Cumulative relative lift of the primary metric per challenger, by exposure time."""
    primary = next((m for m in metrics if m.role == Metric.PRIMARY), None)
    if primary is None:
        return {"metric": None, "series": []}
    buckets = sorted({b for i in range(len(arms)) for b in by_bucket.get((primary.name, i), {})})
    cumulative = []
    running = [[0.0] * 6 for _ in arms]
    shown = []
    for b in buckets:
        for i in range(len(arms)):
            for k, v in enumerate(by_bucket.get((primary.name, i), {}).get(b, [0.0] * 6)):
                running[i][k] += v
        if min(r[0] for r in running) >= MIN_UNITS_PER_ARM:  # earlier intervals are too wide to read
            shown.append(b)
            cumulative.append([list(r) for r in running])
    buckets = shown
    series = []
    for i in range(1, len(arms)):
        points = []
        for b, sums in zip(buckets, cumulative, strict=True):
            c = abstats.sequential(
                _stat(primary, sums[0]), _stat(primary, sums[i]), alpha=alpha, n_star=test.sequential_n_star
            )
            if not c.error:
                points.append({"at": b.isoformat(), "lift": c.lift, "lo": c.ci[0], "hi": c.ci[1]})
        series.append({"arm": arms[i].key, "points": points})
    return {"metric": primary.name, "series": series}
