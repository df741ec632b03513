"""Per-arm sufficient statistics: everything the tests need, nothing per unit.

An arm is summarised by counts and sums (n, Σy, Σy², and the cross terms CUPED
and ratio metrics need), so the control plane can aggregate in SQL and
analysts can run the same code offline. Formulas follow GrowthBook's gbstats
(`gbstats/models/statistics.py`, PyPI 0.8.0); see docs/abtests.md.
"""

from __future__ import annotations

from dataclasses import dataclass


def _sample_variance(n: float, total: float, total_sq: float) -> float:
    if n <= 1:
        return 0.0
    return max((total_sq - total * total / n) / (n - 1), 0.0)


def _sample_covariance(n: float, sum_a: float, sum_b: float, sum_ab: float) -> float:
    if n <= 1:
        return 0.0
    return (sum_ab - sum_a * sum_b / n) / (n - 1)


@dataclass(frozen=True)
class SampleMean:
    """A mean metric: n units, Σy, Σy² (Bessel-corrected variance)."""

    n: int
    sum: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        return _sample_variance(self.n, self.sum, self.sum_squares)


@dataclass(frozen=True)
class Proportion:
    """A conversion metric: n units, Σy with y ∈ {0,1}; variance p(1−p) without Bessel."""

    n: int
    sum: float

    @property
    def sum_squares(self) -> float:
        return self.sum

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        p = self.mean
        return p * (1 - p)


@dataclass(frozen=True)
class Ratio:
    """A ratio metric Σm/Σd over units; per-unit variance by the delta method
    (gbstats `variance_of_ratios`)."""

    n: int
    m_sum: float
    m_sum_squares: float
    d_sum: float
    d_sum_squares: float
    m_d_sum: float

    @property
    def mean(self) -> float:
        return self.m_sum / self.d_sum if self.d_sum else 0.0

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        if self.n <= 1 or self.d_sum == 0:
            return 0.0
        mean_m = self.m_sum / self.n
        mean_d = self.d_sum / self.n
        var_m = _sample_variance(self.n, self.m_sum, self.m_sum_squares)
        var_d = _sample_variance(self.n, self.d_sum, self.d_sum_squares)
        cov = _sample_covariance(self.n, self.m_sum, self.d_sum, self.m_d_sum)
        return max(
            var_m / mean_d**2 + var_d * mean_m**2 / mean_d**4 - 2 * cov * mean_m / mean_d**3,
            0.0,
        )


Plain = SampleMean | Proportion


@dataclass(frozen=True)
class RegressionAdjusted:
    """CUPED (Deng et al. 2013): the post-exposure metric y adjusted by its
    pre-exposure value x. `theta` is set for a comparison by `pooled_theta`."""

    post: Plain
    pre: Plain
    post_pre_sum: float
    theta: float = 0.0

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def covariance(self) -> float:
        return _sample_covariance(self.n, self.post.sum, self.pre.sum, self.post_pre_sum)

    @property
    def mean(self) -> float:
        return self.post.mean - self.theta * self.pre.mean

    @property
    def unadjusted_mean(self) -> float:
        return self.post.mean

    @property
    def variance(self) -> float:
        t = self.theta
        return max(self.post.variance + t * t * self.pre.variance - 2 * t * self.covariance, 0.0)

    def with_theta(self, theta: float) -> RegressionAdjusted:
        return RegressionAdjusted(post=self.post, pre=self.pre, post_pre_sum=self.post_pre_sum, theta=theta)


ArmStatistic = SampleMean | Proportion | Ratio | RegressionAdjusted


def pooled_theta(*arms: RegressionAdjusted) -> float:
    """θ = cov(y, x) / var(x) over all arms pooled (gbstats `compute_theta`).

    Pooling keeps θ independent of the treatment, so the adjustment adds no bias."""
    n = sum(a.n for a in arms)
    y_sum = sum(a.post.sum for a in arms)
    x_sum = sum(a.pre.sum for a in arms)
    x_sq = sum(a.pre.sum_squares for a in arms)
    xy = sum(a.post_pre_sum for a in arms)
    var_x = _sample_variance(n, x_sum, x_sq)
    if var_x == 0:
        return 0.0
    return _sample_covariance(n, y_sum, x_sum, xy) / var_x


def with_pooled_theta(control: ArmStatistic, treatment: ArmStatistic) -> tuple[ArmStatistic, ArmStatistic]:
    """Both arms with CUPED's pooled θ set (a no-op for statistics without a covariate)."""
    if isinstance(control, RegressionAdjusted) and isinstance(treatment, RegressionAdjusted):
        theta = pooled_theta(control, treatment)
        return control.with_theta(theta), treatment.with_theta(theta)
    return control, treatment
