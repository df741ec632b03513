"""A/B-test statistics and assignment, pure numpy/scipy (no Django).

The control plane aggregates each arm into sufficient statistics in SQL and
calls these functions; analysts can run them offline on the same numbers:

    from cellar import abstats
    c = abstats.Proportion(n=5000, sum=500)
    t = abstats.Proportion(n=5000, sum=560)
    abstats.sequential(c, t).ci
"""

from cellar.abstats.assignment import Assigner, bucket_ranges, choose_variation, fnv1a32, hash_value
from cellar.abstats.corrections import (
    SRM_THRESHOLD,
    adjusted_interval,
    benjamini_hochberg,
    holm,
    srm_alert,
    srm_p_value,
    winsorize,
)
from cellar.abstats.inference import Comparison, bayesian, lift_and_variance, sequential, welch, welch_dof
from cellar.abstats.statistics import (
    ArmStatistic,
    Proportion,
    Ratio,
    RegressionAdjusted,
    SampleMean,
    pooled_theta,
    with_pooled_theta,
)

__all__ = [
    "SRM_THRESHOLD",
    "ArmStatistic",
    "Assigner",
    "Comparison",
    "Proportion",
    "Ratio",
    "RegressionAdjusted",
    "SampleMean",
    "adjusted_interval",
    "bayesian",
    "benjamini_hochberg",
    "bucket_ranges",
    "choose_variation",
    "fnv1a32",
    "hash_value",
    "holm",
    "lift_and_variance",
    "pooled_theta",
    "sequential",
    "srm_alert",
    "srm_p_value",
    "welch",
    "welch_dof",
    "winsorize",
    "with_pooled_theta",
]
