"""cellar.models.drift against values computed by hand (and numpy as an independent binner)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cellar.models import reference_profile
from cellar.models.drift import (
    LATENCY_EDGES_MS,
    bin_numeric,
    drift_report,
    feature_psi,
    latency_bucket,
    latency_percentile,
    psi,
)


@pytest.mark.parametrize(
    "expected, actual, value",
    [
        # 0.3 ln 1.6 + (-0.3) ln 0.4
        ([50, 50], [80, 20], 0.4158883083),
        # 0.1 ln 2 + (-0.1) ln 0.75: the textbook four-bin example
        ([10, 20, 30, 40], [20, 20, 30, 30], 0.0980829253),
        # an empty reference bin takes the 1e-4 floor: -0.1 ln 0.8 + 0.0999 ln 1000
        ([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], 0.7123991075),
        ([3, 7], [3, 7], 0.0),
    ],
    ids=["two-bins", "four-bins", "empty-bin", "identical"],
)
def test_psi_known_values(expected, actual, value):
    assert psi(expected, actual) == pytest.approx(value, abs=1e-9)


def test_psi_refuses_mismatched_or_empty_histograms():
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        psi([0, 0], [1, 1])


def test_numeric_feature_uses_the_profiles_bins():
    # edges [1, 2]: (-inf, 1], (1, 2], (2, inf); 1.0 and 2.0 fall in the bin they close.
    feature = {"kind": "numeric", "null_fraction": 0.0, "bins": {"edges": [1.0, 2.0], "counts": [25, 50, 25]}}
    values = [0.5, 1.0, 1.5, 2.0, 3.0, 5.0]
    assert bin_numeric([1.0, 2.0], values) == ([2, 2, 2], 0)
    hand = 2 * (1 / 3 - 1 / 4) * math.log(4 / 3) + (1 / 3 - 1 / 2) * math.log(2 / 3)
    assert feature_psi(feature, values) == pytest.approx(hand, abs=1e-12)
    assert hand == pytest.approx(0.115525, abs=1e-6)


def test_missing_values_are_their_own_bin():
    # Reference: 20 % null → [40, 40] + 20 nulls; sample: [1, 2] + 2 nulls → shares .2 .4 .4
    feature = {"kind": "numeric", "null_fraction": 0.2, "bins": {"edges": [0.0], "counts": [40, 40]}}
    value = feature_psi(feature, [-1.0, 1.0, None, float("nan"), 1.0])
    assert value == pytest.approx(2 * 0.2 * math.log(2), abs=1e-12)


def test_categorical_feature_compares_top_values_and_other():
    feature = {"kind": "categorical", "null_fraction": 0.0, "top": {"a": 60, "b": 30}, "other": 10}
    values = ["a"] * 5 + ["b"] * 3 + ["c", "d"]
    hand = (0.5 - 0.6) * math.log(0.5 / 0.6) + (0.2 - 0.1) * math.log(2)
    assert feature_psi(feature, values) == pytest.approx(hand, abs=1e-12)


def test_binning_matches_numpy_searchsorted_on_random_values():
    rng = np.random.default_rng(7)
    edges = sorted(rng.normal(0, 1, 9).tolist())
    values = rng.normal(0.3, 1.2, 5000)
    values[::97] = np.round(values[::97])  # some values exactly on round numbers
    counts, missing = bin_numeric(edges, values.tolist() + list(edges))
    reference = np.bincount(np.searchsorted(edges, np.concatenate([values, edges]), side="left"), minlength=10)
    assert counts == reference.tolist() and missing == 0


def test_drift_report_on_a_registered_profile_flags_only_the_shifted_feature():
    rng = np.random.default_rng(1)
    train = {"age": rng.normal(40, 10, 5000).tolist(), "city": rng.choice(["a", "b", "c"], 5000).tolist()}
    profile = reference_profile(train)
    same_age = rng.normal(40, 10, 2000)
    rows = [{"age": float(a), "city": c} for a, c in zip(same_age, rng.choice(["a", "b", "c"], 2000), strict=True)]
    report = {r["feature"]: r for r in drift_report(profile, rows)}
    assert report["age"]["psi"] < 0.05 and not report["age"]["warning"]
    assert report["city"]["psi"] < 0.05

    shifted = [{"age": float(a) + 15, "city": "a"} for a in same_age]
    report = {r["feature"]: r for r in drift_report(profile, shifted, threshold=0.2)}
    assert report["age"]["warning"] and report["city"]["warning"]
    # The same PSI computed independently: numpy bins on the profile's edges, then the formula.
    edges = profile["features"]["age"]["bins"]["edges"]
    expected = np.asarray(profile["features"]["age"]["bins"]["counts"], dtype=float)
    actual = np.bincount(np.searchsorted(edges, same_age + 15, side="left"), minlength=len(edges) + 1).astype(float)
    e, a = np.maximum(expected / expected.sum(), 1e-4), np.maximum(actual / actual.sum(), 1e-4)
    assert report["age"]["psi"] == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-9)


def test_latency_histogram_percentiles():
    hist = [0] * (len(LATENCY_EDGES_MS) + 1)
    for ms in [0.2] * 98 + [40.0, 900.0]:
        hist[latency_bucket(ms)] += 1
    p50, p99 = latency_percentile(hist, 0.5), latency_percentile(hist, 0.99)
    assert 0.2 <= p50 < 0.2 * 1.22  # the upper edge of 0.2 ms's bucket
    assert 40.0 <= p99 < 40.0 * 1.22
    assert latency_percentile([0, 0], 0.5) is None
