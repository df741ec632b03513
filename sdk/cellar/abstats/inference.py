"""Comparisons of a treatment arm against the control: Welch t-test, the
always-valid sequential interval, and the Bayesian normal posterior.

Every function takes two arm statistics (see `statistics.py`) and returns a
`Comparison`. Relative lift is (ȳT − ȳC)/|ȳC| with a delta-method variance;
absolute lift is ȳT − ȳC. Sources per formula are in docs/abtests.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy import stats as _st

from cellar.abstats.statistics import ArmStatistic, with_pooled_theta


@dataclass(frozen=True)
class Comparison:
    """One treatment vs control on one metric."""

    method: str  # "frequentist" | "sequential" | "bayesian"
    relative: bool
    lift: float
    se: float
    ci: tuple[float, float]
    control_mean: float
    treatment_mean: float
    p_value: float | None = None
    dof: float | None = None
    chance_to_win: float | None = None
    risk: tuple[float, float] | None = None  # (choosing control, choosing treatment)
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        out["ci"] = list(self.ci)
        if self.risk is not None:
            out["risk"] = list(self.risk)
        out.update(self.extra)
        return out


def lift_and_variance(control: ArmStatistic, treatment: ArmStatistic, *, relative: bool) -> tuple[float, float]:
    """Point estimate and variance of the lift (gbstats `frequentist_diff`/`frequentist_variance`).

    For CUPED the means are the adjusted ones; the relative denominator is the
    control's unadjusted mean (GrowthBook's convention)."""
    base = control.unadjusted_mean
    if relative:
        lift = (treatment.mean - control.mean) / abs(base)
        var = treatment.variance / (base**2 * treatment.n) + control.variance * treatment.unadjusted_mean**2 / (
            base**4 * control.n
        )
    else:
        lift = treatment.mean - control.mean
        var = treatment.variance / treatment.n + control.variance / control.n
    return lift, var


def welch_dof(control: ArmStatistic, treatment: ArmStatistic) -> float:
    """Welch–Satterthwaite degrees of freedom from the per-arm variances."""
    vc, vt, nc, nt = control.variance, treatment.variance, control.n, treatment.n
    num = (vt / nt + vc / nc) ** 2
    den = vt**2 / (nt**2 * (nt - 1)) + vc**2 / (nc**2 * (nc - 1))
    return num / den if den > 0 else math.inf


def _degenerate(control: ArmStatistic, treatment: ArmStatistic) -> str | None:
    if control.n < 2 or treatment.n < 2:
        return "Each arm needs at least two units."
    if control.unadjusted_mean == 0 or control.mean == 0:
        return "The control's mean is zero, so a relative lift is undefined."
    if control.variance <= 0 or treatment.variance <= 0:
        return "An arm has zero variance; wait for more varied data."
    return None


def _empty(method: str, relative: bool, control: ArmStatistic, treatment: ArmStatistic, error: str) -> Comparison:
    return Comparison(
        method=method,
        relative=relative,
        lift=0.0,
        se=0.0,
        ci=(0.0, 0.0),
        control_mean=control.unadjusted_mean if control.n else 0.0,
        treatment_mean=treatment.unadjusted_mean if treatment.n else 0.0,
        p_value=1.0 if method != "bayesian" else None,
        chance_to_win=0.5 if method == "bayesian" else None,
        risk=(0.0, 0.0) if method == "bayesian" else None,
        error=error,
    )


def welch(control: ArmStatistic, treatment: ArmStatistic, *, relative: bool = True, alpha: float = 0.05) -> Comparison:
    """Two-sided Welch t-test (fixed horizon): p-value and 1−α CI on the lift."""
    control, treatment = with_pooled_theta(control, treatment)
    error = _degenerate(control, treatment)
    if error:
        return _empty("frequentist", relative, control, treatment, error)
    lift, var = lift_and_variance(control, treatment, relative=relative)
    se = math.sqrt(var)
    dof = welch_dof(control, treatment)
    p = float(2 * _st.t.sf(abs(lift) / se, dof))
    half = float(_st.t.ppf(1 - alpha / 2, dof)) * se
    return Comparison(
        method="frequentist",
        relative=relative,
        lift=lift,
        se=se,
        ci=(lift - half, lift + half),
        control_mean=control.unadjusted_mean,
        treatment_mean=treatment.unadjusted_mean,
        p_value=p,
        dof=dof,
    )


def sequential_rho(alpha: float, n_star: float) -> float:
    """Mixture tuning ρ for a sample size N* (Waudby-Smith et al. 2023, eq 161)."""
    la = -2 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1)) / n_star)


def sequential(
    control: ArmStatistic,
    treatment: ArmStatistic,
    *,
    relative: bool = True,
    alpha: float = 0.05,
    n_star: float = 5000,
) -> Comparison:
    """Always-valid two-sided interval (asymptotic confidence sequence,
    Waudby-Smith et al. 2023 eqs 9 and 155; GrowthBook's SequentialTwoSidedTTest).

    Valid at every look, so results can be watched daily. N* is roughly the
    total sample size at which the interval is tightest."""
    control, treatment = with_pooled_theta(control, treatment)
    error = _degenerate(control, treatment)
    if error:
        return _empty("sequential", relative, control, treatment, error)
    lift, var = lift_and_variance(control, treatment, relative=relative)
    n = control.n + treatment.n
    rho = sequential_rho(alpha, n_star)
    s2 = var * n
    nr2 = n * rho * rho
    half = math.sqrt(s2) * math.sqrt(2 * (nr2 + 1) * math.log(math.sqrt(nr2 + 1) / alpha) / (n * rho) ** 2)
    st2 = lift * lift * n / var
    log_e = rho * rho * st2 / (2 * (nr2 + 1)) - 0.5 * math.log(nr2 + 1)
    p = 1.0 if log_e <= 0 else math.exp(-log_e)
    return Comparison(
        method="sequential",
        relative=relative,
        lift=lift,
        se=math.sqrt(var),
        ci=(lift - half, lift + half),
        control_mean=control.unadjusted_mean,
        treatment_mean=treatment.unadjusted_mean,
        p_value=min(p, 1.0),
        extra={"n_star": n_star},
    )


def _truncated_normal_mean(mu: float, sigma: float, lower: float, upper: float) -> float:
    a, b = (lower - mu) / sigma, (upper - mu) / sigma
    return float(_st.truncnorm.mean(a, b, loc=mu, scale=sigma))


def bayesian(
    control: ArmStatistic,
    treatment: ArmStatistic,
    *,
    relative: bool = True,
    alpha: float = 0.05,
    prior_mean: float = 0.0,
    prior_sd: float | None = None,
) -> Comparison:
    """Normal posterior on the lift: flat prior by default, or N(prior_mean, prior_sd²)
    on the same scale as the lift. Chance to beat control = P(lift > 0); risk is the
    expected loss of choosing control, then of choosing the treatment (gbstats
    `EffectBayesianABTest`)."""
    control, treatment = with_pooled_theta(control, treatment)
    error = _degenerate(control, treatment)
    if error:
        return _empty("bayesian", relative, control, treatment, error)
    lift, var = lift_and_variance(control, treatment, relative=relative)
    precision = 1 / var
    mean = lift
    if prior_sd is not None:
        precision += 1 / prior_sd**2
        mean = (lift / var + prior_mean / prior_sd**2) / precision
    sd = math.sqrt(1 / precision)
    ctw = float(_st.norm.sf(0, mean, sd))
    lo, hi = (float(v) for v in _st.norm.ppf([alpha / 2, 1 - alpha / 2], mean, sd))
    p_worse = 1 - ctw
    risk_control = ctw * _truncated_normal_mean(mean, sd, 0.0, math.inf)
    risk_treatment = -p_worse * _truncated_normal_mean(mean, sd, -math.inf, 0.0)
    return Comparison(
        method="bayesian",
        relative=relative,
        lift=mean,
        se=sd,
        ci=(lo, hi),
        control_mean=control.unadjusted_mean,
        treatment_mean=treatment.unadjusted_mean,
        chance_to_win=ctw,
        risk=(risk_control, risk_treatment),
    )
