"""A/B-test statistics and assignment.

The control plane aggregates each arm into sufficient statistics in SQL and calls these
functions; analysts can run them offline on the same numbers:

    from cellar import abstats
    c = abstats.Proportion(n=5000, sum=500)
    t = abstats.Proportion(n=5000, sum=560)
    abstats.sequential(c, t).ci

The statistics need numpy and scipy (`pip install cellar[abstats]`) and are imported on first
use; assignment (`cellar.abstats.assignment`, used by the serve process) and `track` need
neither.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "assignment": ("Assigner", "bucket_ranges", "choose_variation", "fnv1a32", "hash_value"),
    "corrections": (
        "SRM_THRESHOLD",
        "adjusted_interval",
        "benjamini_hochberg",
        "holm",
        "srm_alert",
        "srm_p_value",
        "winsorize",
    ),
    "inference": ("Comparison", "bayesian", "lift_and_variance", "sequential", "welch", "welch_dof"),
    "statistics": (
        "ArmStatistic",
        "Proportion",
        "Ratio",
        "RegressionAdjusted",
        "SampleMean",
        "pooled_theta",
        "with_pooled_theta",
    ),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cellar.abstats' has no attribute {name!r}")
    value = getattr(import_module(f"cellar.abstats.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
