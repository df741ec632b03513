"""cellar.abstats from sufficient statistics vs independent computations on the raw
samples: scipy's Welch test, OLS for CUPED, statsmodels' multiple-testing
corrections, numerical integration for the Bayesian risk, and simulation for the
delta method and for the always-valid property of the sequential interval."""

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from cellar import abstats


def sums(y):
    return abstats.SampleMean(n=len(y), sum=float(y.sum()), sum_squares=float((y * y).sum()))


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def test_welch_absolute_equals_scipy_on_raw_samples(rng):
    c = rng.normal(10, 3, 800)
    t = rng.normal(10.4, 4, 900)
    r = abstats.welch(sums(c), sums(t), relative=False)
    ref = st.ttest_ind(t, c, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.dof == pytest.approx(ref.df, rel=1e-9)
    assert r.ci == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))


def test_proportion_absolute_equals_two_proportion_z_test_without_pooling():
    # Welch on 0/1 data with var p(1-p) is, at this size, the unpooled two-proportion z-test.
    r = abstats.welch(abstats.Proportion(n=20000, sum=2000), abstats.Proportion(n=20000, sum=2150), relative=False)
    p1, p2 = 0.1, 0.1075
    se = np.sqrt(p1 * (1 - p1) / 20000 + p2 * (1 - p2) / 20000)
    assert r.lift == pytest.approx(p2 - p1)
    assert r.se == pytest.approx(se, rel=1e-12)
    assert r.p_value == pytest.approx(2 * st.norm.sf((p2 - p1) / se), rel=1e-3)


def test_cuped_theta_is_the_pooled_ols_slope_and_adjusts_like_raw_data(rng):
    n = 3000
    xc, xt = rng.normal(5, 2, n), rng.normal(5, 2, n)
    yc = 1 + 0.7 * xc + rng.normal(0, 1, n)
    yt = 1.1 + 0.7 * xt + rng.normal(0, 1, n)

    def arm(y, x):
        return abstats.RegressionAdjusted(post=sums(y), pre=sums(x), post_pre_sum=float((x * y).sum()))

    theta = abstats.pooled_theta(arm(yc, xc), arm(yt, xt))
    x_all, y_all = np.concatenate([xc, xt]), np.concatenate([yc, yt])
    design = np.column_stack([np.ones_like(x_all), x_all])
    slope = np.linalg.lstsq(design, y_all, rcond=None)[0][1]
    assert theta == pytest.approx(slope, rel=1e-9)

    # With θ fixed, CUPED is a Welch test on the raw adjusted values y − θx.
    r = abstats.welch(arm(yc, xc), arm(yt, xt), relative=False)
    ref = st.ttest_ind(yt - theta * xt, yc - theta * xc, equal_var=False)
    assert r.lift == pytest.approx((yt - theta * xt).mean() - (yc - theta * xc).mean(), rel=1e-9)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    plain = abstats.welch(sums(yc), sums(yt), relative=False)
    assert (r.ci[1] - r.ci[0]) < 0.6 * (plain.ci[1] - plain.ci[0])  # variance reduction is real


def test_cuped_without_pre_period_variance_falls_back_to_plain():
    flat = abstats.SampleMean(n=100, sum=0.0, sum_squares=0.0)
    y = abstats.SampleMean(n=100, sum=120.0, sum_squares=400.0)
    arm = abstats.RegressionAdjusted(post=y, pre=flat, post_pre_sum=0.0)
    assert abstats.pooled_theta(arm, arm) == 0.0
    assert abstats.welch(arm, arm).lift == abstats.welch(y, y).lift


def test_relative_lift_delta_method_matches_simulation(rng):
    # The delta-method SE of (ȳT − ȳC)/ȳC vs the spread of the estimator over 4000 replications.
    n, mc, mt, sd = 2000, 10.0, 10.5, 4.0
    yc = rng.normal(mc, sd, (4000, n))
    yt = rng.normal(mt, sd, (4000, n))
    lifts = (yt.mean(1) - yc.mean(1)) / yc.mean(1)
    one = abstats.welch(sums(yc[0]), sums(yt[0]))
    assert one.se == pytest.approx(lifts.std(), rel=0.05)


def test_ratio_delta_method_matches_simulation(rng):
    n, reps = 1500, 3000
    d = rng.poisson(3, (reps, n)) + 1
    m = rng.binomial(d, 0.3)
    ratios = m.sum(1) / d.sum(1)
    m0, d0 = m[0].astype(float), d[0].astype(float)
    stat = abstats.Ratio(
        n=n,
        m_sum=m0.sum(),
        m_sum_squares=(m0 * m0).sum(),
        d_sum=d0.sum(),
        d_sum_squares=(d0 * d0).sum(),
        m_d_sum=(m0 * d0).sum(),
    )
    assert stat.mean == pytest.approx(m0.sum() / d0.sum())
    assert np.sqrt(stat.variance / n) == pytest.approx(ratios.std(), rel=0.05)


def test_bayesian_risk_and_chance_by_numerical_integration():
    c, t = abstats.Proportion(n=4000, sum=400), abstats.Proportion(n=4000, sum=430)
    r = abstats.bayesian(c, t)
    mu, sd = r.lift, r.se
    pdf = st.norm(mu, sd).pdf
    assert r.chance_to_win == pytest.approx(integrate.quad(pdf, 0, np.inf)[0], rel=1e-8)
    # expected loss of shipping control = E[max(Δ, 0)], of shipping treatment = E[max(−Δ, 0)]
    assert r.risk[0] == pytest.approx(integrate.quad(lambda x: x * pdf(x), 0, np.inf)[0], rel=1e-6)
    assert r.risk[1] == pytest.approx(integrate.quad(lambda x: -x * pdf(x), -np.inf, 0)[0], rel=1e-6)


def test_holm_and_bh_equal_statsmodels():
    p = [0.001, 0.04, 0.03, 0.2, 0.012, 0.04, 0.9]
    assert abstats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert abstats.benjamini_hochberg(p) == pytest.approx(list(multipletests(p, method="fdr_bh")[1]))
    assert abstats.holm([]) == [] and abstats.benjamini_hochberg([]) == []


def test_adjusted_interval_excludes_zero_exactly_when_adjusted_p_is_significant():
    lo, hi = abstats.adjusted_interval(0.05, 0.049)
    assert lo > 0
    lo, hi = abstats.adjusted_interval(0.05, 0.051)
    assert lo < 0 < hi


def test_srm_equals_scipy_chisquare():
    obs = [5020, 4890, 5120]
    expected = np.array([0.3, 0.3, 0.4]) * sum(obs)
    assert abstats.srm_p_value(obs, [0.3, 0.3, 0.4]) == pytest.approx(st.chisquare(obs, expected).pvalue, rel=1e-12)


def test_winsorize_caps_at_interpolated_percentiles():
    values = list(range(1, 101))  # 1..100; the 0.95 quantile (linear) is 95.05
    out = abstats.winsorize(values, upper=0.95, lower=0.05)
    assert out.max() == pytest.approx(95.05) and out.min() == pytest.approx(5.95)
    assert (out[10:90] == np.arange(11, 91)).all()
    assert abstats.winsorize([], upper=0.9).size == 0


def test_sequential_interval_is_valid_under_continuous_peeking(rng):
    # A/A tests looked at 50 times each: the fixed-horizon Welch interval excludes the true
    # lift (0) far more often than α at some look; the confidence sequence stays below α.
    sims, looks, step = 300, 50, 100
    fixed_misses = seq_misses = 0
    for _ in range(sims):
        c = rng.normal(10, 2, looks * step)
        t = rng.normal(10, 2, looks * step)
        fixed_hit = seq_hit = False
        for k in range(1, looks + 1):
            sc, stt = sums(c[: k * step]), sums(t[: k * step])
            w = abstats.welch(sc, stt, relative=False)
            s = abstats.sequential(sc, stt, relative=False, n_star=5000)
            fixed_hit |= not (w.ci[0] <= 0 <= w.ci[1])
            seq_hit |= not (s.ci[0] <= 0 <= s.ci[1])
        fixed_misses += fixed_hit
        seq_misses += seq_hit
    assert fixed_misses / sims > 0.15
    assert seq_misses / sims < 0.05


def test_degenerate_inputs_answer_with_an_error_not_an_exception():
    empty = abstats.Proportion(n=0, sum=0)
    r = abstats.welch(empty, abstats.Proportion(n=10, sum=3))
    assert r.error and r.p_value == 1.0
    r = abstats.sequential(abstats.Proportion(n=10, sum=0), abstats.Proportion(n=10, sum=3))
    assert "zero" in r.error
    assert abstats.bayesian(empty, empty).chance_to_win == 0.5
