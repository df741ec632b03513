"""cellar.abstats against GrowthBook's gbstats 0.8.0 (an independent implementation),
on the sufficient statistics stored in data/gbstats_golden.json (see make_gbstats_golden.py)."""

import pytest

from cellar import abstats
from tests.sdk.abstats.conftest import load_golden

GOLDEN = load_golden()


def stat(kind: str, s: dict):
    if kind == "mean":
        return abstats.SampleMean(n=s["n"], sum=s["sum"], sum_squares=s["sum_squares"])
    if kind == "proportion":
        return abstats.Proportion(n=s["n"], sum=s["sum"])
    if kind == "ratio":
        return abstats.Ratio(**s)
    return abstats.RegressionAdjusted(
        post=stat("mean", s["post"]), pre=stat("mean", s["pre"]), post_pre_sum=s["post_pre_sum"]
    )


def approx(x):
    return pytest.approx(x, rel=1e-9, abs=1e-12)


CASES = [pytest.param(c, id=c["name"]) for c in GOLDEN["cases"]]


@pytest.mark.parametrize("case", CASES)
def test_welch_matches_gbstats(case):
    relative = case["difference_type"] == "relative"
    r = abstats.welch(stat(case["kind"], case["control"]), stat(case["kind"], case["treatment"]), relative=relative)
    g = case["welch"]
    assert r.error is None
    assert r.lift == approx(g["lift"])
    assert list(r.ci) == [approx(v) for v in g["ci"]]
    assert r.p_value == approx(g["p_value"])
    assert r.dof == approx(g["dof"])


@pytest.mark.parametrize("n_star", ["5000", "20000"])
@pytest.mark.parametrize("case", CASES)
def test_sequential_matches_gbstats(case, n_star):
    relative = case["difference_type"] == "relative"
    r = abstats.sequential(
        stat(case["kind"], case["control"]),
        stat(case["kind"], case["treatment"]),
        relative=relative,
        n_star=float(n_star),
    )
    g = case["sequential"][n_star]
    assert r.lift == approx(g["lift"])
    assert list(r.ci) == [approx(v) for v in g["ci"]]
    assert r.p_value == approx(g["p_value"])


@pytest.mark.parametrize("case", CASES)
def test_bayesian_flat_prior_matches_gbstats(case):
    relative = case["difference_type"] == "relative"
    r = abstats.bayesian(stat(case["kind"], case["control"]), stat(case["kind"], case["treatment"]), relative=relative)
    g = case["bayesian_flat"]
    assert r.lift == approx(g["lift"])
    assert list(r.ci) == [pytest.approx(v, rel=1e-7) for v in g["ci"]]
    assert r.chance_to_win == pytest.approx(g["chance_to_win"], rel=1e-9)
    assert list(r.risk) == [pytest.approx(v, rel=1e-6, abs=1e-12) for v in g["risk"]]


@pytest.mark.parametrize("case", [c for c in CASES if "bayesian_prior_0_0.3" in c.values[0]])
def test_bayesian_proper_prior_matches_gbstats(case):
    r = abstats.bayesian(
        stat(case["kind"], case["control"]), stat(case["kind"], case["treatment"]), relative=True, prior_sd=0.3
    )
    g = case["bayesian_prior_0_0.3"]
    assert r.lift == approx(g["lift"])
    assert r.chance_to_win == pytest.approx(g["chance_to_win"], rel=1e-9)
    assert list(r.risk) == [pytest.approx(v, rel=1e-6, abs=1e-12) for v in g["risk"]]


@pytest.mark.parametrize("case", GOLDEN["srm"], ids=lambda c: str(c["observed"]))
def test_srm_matches_gbstats(case):
    assert abstats.srm_p_value(case["observed"], case["weights"]) == approx(case["p_value"])


def test_the_notes_published_crosscheck_numbers():
    # /work/shared/notes/abtest.md: 500/5000 vs 560/5000 → CTW 0.96722, risk [0.12084, 0.000838]
    # (risk there in percent of the relative lift); SRM [5000, 5200] → p 0.04767.
    r = abstats.bayesian(abstats.Proportion(n=5000, sum=500), abstats.Proportion(n=5000, sum=560))
    assert r.chance_to_win == pytest.approx(0.96722, abs=1e-5)
    assert abstats.srm_p_value([5000, 5200], [0.5, 0.5]) == pytest.approx(0.04767, abs=1e-5)
    assert not abstats.srm_alert([5000, 5200], [0.5, 0.5])
    assert abstats.srm_alert([5000, 5400], [0.5, 0.5])
