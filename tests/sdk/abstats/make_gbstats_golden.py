"""Regenerate data/gbstats_golden.json with GrowthBook's own stats engine.

gbstats 0.8.0 pins numpy<2 and pandas<2, so it cannot live in Cellar's venv; run
this in a throwaway one (the oracle is only ever used to write the fixture):

    python3 -m venv /tmp/gb && /tmp/gb/bin/pip install gbstats==0.8.0
    /tmp/gb/bin/python tests/sdk/abstats/make_gbstats_golden.py

The fixture holds each case's sufficient statistics and gbstats's answers;
tests/sdk/abstats/test_inference_golden.py recomputes them with cellar.abstats.
"""

import json
import pathlib

import gbstats
import numpy as np
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm

rng = np.random.RandomState(20261129)


def mean_sums(y):
    return {"n": int(len(y)), "sum": float(y.sum()), "sum_squares": float((y * y).sum())}


def arms():
    cases = {}
    # mean metric, revenue-like (lognormal), unequal n
    yc = rng.lognormal(1.0, 0.8, 4000)
    yt = rng.lognormal(1.03, 0.85, 4100)
    cases["mean"] = ("mean", mean_sums(yc), mean_sums(yt))
    # proportion (conversion)
    cases["proportion"] = ("proportion", {"n": 5000, "sum": 500}, {"n": 5000, "sum": 560})
    cases["proportion_small"] = ("proportion", {"n": 300, "sum": 31}, {"n": 310, "sum": 29})
    # ratio: numerator m (e.g. clicks), denominator d (sessions) per unit
    dc = rng.poisson(4, 3000) + 1
    dt = rng.poisson(4, 3100) + 1
    mc = rng.binomial(dc, 0.20)
    mt = rng.binomial(dt, 0.215)

    def ratio(m, d):
        m = m.astype(float)
        d = d.astype(float)
        return {
            "n": int(len(m)),
            "m_sum": float(m.sum()),
            "m_sum_squares": float((m * m).sum()),
            "d_sum": float(d.sum()),
            "d_sum_squares": float((d * d).sum()),
            "m_d_sum": float((m * d).sum()),
        }

    cases["ratio"] = ("ratio", ratio(mc, dc), ratio(mt, dt))
    # CUPED: pre-period x correlated with post y
    xc = rng.normal(10, 3, 6000)
    xt = rng.normal(10, 3, 6000)
    yc = 2 + 0.8 * xc + rng.normal(0, 2, 6000)
    yt = 2.15 + 0.8 * xt + rng.normal(0, 2, 6000)

    def cuped(y, x):
        return {"post": mean_sums(y), "pre": mean_sums(x), "post_pre_sum": float((x * y).sum())}

    cases["cuped"] = ("cuped", cuped(yc, xc), cuped(yt, xt))
    return cases


def gb_stat(kind, s):
    if kind == "mean":
        return SampleMeanStatistic(n=s["n"], sum=s["sum"], sum_squares=s["sum_squares"])
    if kind == "proportion":
        return ProportionStatistic(n=s["n"], sum=s["sum"])
    if kind == "ratio":
        n = s["n"]
        return RatioStatistic(
            n=n,
            m_statistic=SampleMeanStatistic(n=n, sum=s["m_sum"], sum_squares=s["m_sum_squares"]),
            d_statistic=SampleMeanStatistic(n=n, sum=s["d_sum"], sum_squares=s["d_sum_squares"]),
            m_d_sum_of_products=s["m_d_sum"],
        )
    n = s["post"]["n"]
    return RegressionAdjustedStatistic(
        n=n,
        post_statistic=gb_stat("mean", s["post"]),
        pre_statistic=gb_stat("mean", s["pre"]),
        post_pre_sum_of_products=s["post_pre_sum"],
        theta=0,
    )


def result(r, **extra):
    out = {"lift": float(r.expected), "ci": [float(v) for v in r.ci], **extra}
    if hasattr(r, "p_value"):
        out["p_value"] = float(r.p_value)
    if hasattr(r, "chance_to_win"):
        out["chance_to_win"] = float(r.chance_to_win)
        out["risk"] = [float(v) for v in r.risk]
    return out


golden = {"gbstats_version": gbstats.__version__ if hasattr(gbstats, "__version__") else "0.8.0", "cases": []}
for name, (kind, c, t) in arms().items():
    for diff in ("relative", "absolute"):
        entry = {"name": f"{name}/{diff}", "kind": kind, "control": c, "treatment": t, "difference_type": diff}
        r = TwoSidedTTest(gb_stat(kind, c), gb_stat(kind, t), FrequentistConfig(difference_type=diff)).compute_result()
        test = TwoSidedTTest(gb_stat(kind, c), gb_stat(kind, t), FrequentistConfig(difference_type=diff))
        entry["welch"] = result(r, dof=float(test.dof))
        entry["sequential"] = {}
        for n_star in (5000, 20000):
            r = SequentialTwoSidedTTest(
                gb_stat(kind, c),
                gb_stat(kind, t),
                SequentialConfig(difference_type=diff, sequential_tuning_parameter=n_star),
            ).compute_result()
            entry["sequential"][str(n_star)] = result(r)
        r = EffectBayesianABTest(
            gb_stat(kind, c), gb_stat(kind, t), EffectBayesianConfig(difference_type=diff)
        ).compute_result()
        entry["bayesian_flat"] = result(r)
        if diff == "relative":
            cfg = EffectBayesianConfig(
                difference_type=diff, prior_effect=GaussianPrior(mean=0, variance=0.3**2, proper=True)
            )
            r = EffectBayesianABTest(gb_stat(kind, c), gb_stat(kind, t), cfg).compute_result()
            entry["bayesian_prior_0_0.3"] = result(r)
        golden["cases"].append(entry)

golden["srm"] = [
    {"observed": o, "weights": w, "p_value": float(check_srm(o, w))}
    for o, w in [
        ([5000, 5200], [0.5, 0.5]),
        ([1000, 1000, 1100], [1 / 3, 1 / 3, 1 / 3]),
        ([8000, 2100], [0.8, 0.2]),
        ([4000, 4500, 0], [0.5, 0.5, 0.0]),
        ([100000, 101500], [0.5, 0.5]),
    ]
]

out = pathlib.Path(__file__).parent / "data" / "gbstats_golden.json"
out.write_text(json.dumps(golden, indent=1) + "\n")
print(f"wrote {out} ({len(golden['cases'])} cases)")
