"""Assignment against GrowthBook's own test vectors, plus the properties the A/B tests rely on."""

import numpy as np
import pytest
from scipy import stats as st

from cellar.abstats import assignment as a


def test_hash_vectors(growthbook_cases):
    for seed, value, version, expected in growthbook_cases["hash"]:
        assert a.hash_value(seed, value, version) == expected, (seed, value, version)


def test_bucket_range_vectors(growthbook_cases):
    for name, (n, coverage, weights), expected in growthbook_cases["getBucketRange"]:
        got = a.bucket_ranges(n, coverage, weights)
        assert [list(r) for r in got] == [[pytest.approx(x, abs=1e-9) for x in r] for r in expected], name


def test_choose_variation_vectors(growthbook_cases):
    for name, n, ranges, expected in growthbook_cases["chooseVariation"]:
        assert a.choose_variation(n, [tuple(r) for r in ranges]) == expected, name


def test_namespace_and_equal_weight_vectors(growthbook_cases):
    for name, unit, namespace, expected in growthbook_cases["inNamespace"]:
        assert a.in_namespace(unit, tuple(namespace)) is expected, name
    for n, expected in growthbook_cases["getEqualWeights"]:
        assert a.equal_weights(n) == pytest.approx(expected), n


def test_non_ascii_units_hash_as_utf16_code_units():
    # "é" is one UTF-16 unit (0xE9), "😀" two surrogates; both as JavaScript sees them.
    h = 0x811C9DC5
    for unit in (0xD83D, 0xDE00):
        h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
    assert a.fnv1a32("😀") == h
    assert a.fnv1a32("é") == ((0x811C9DC5 ^ 0xE9) * 0x01000193) & 0xFFFFFFFF


def test_assigner_is_the_hash_and_ranges_and_is_sticky():
    asg = a.Assigner("exp-1", [0.5, 0.3, 0.2], coverage=0.8)
    ranges = a.bucket_ranges(3, 0.8, [0.5, 0.3, 0.2])
    for i in range(2000):
        unit = f"user-{i}"
        expected = a.choose_variation(a.hash_value("exp-1", unit, 2), ranges)
        assert asg.assign(unit) == expected == asg.assign(unit)


def test_weights_are_respected_within_tolerance():
    asg = a.Assigner("weights", [0.2, 0.8])
    arms = np.array([asg.assign(str(i)) for i in range(50000)])
    assert st.binomtest(int((arms == 0).sum()), 50000, 0.2).pvalue > 0.001


def test_coverage_ramp_never_moves_an_enrolled_unit():
    units = [f"u{i}" for i in range(20000)]
    seen: dict[str, int] = {}
    for coverage in (0.1, 0.2, 0.5, 1.0, 0.5):
        asg = a.Assigner("ramp", [0.5, 0.5], coverage)
        enrolled = 0
        for u in units:
            arm = asg.assign(u)
            if arm >= 0:
                enrolled += 1
                assert seen.setdefault(u, arm) == arm
        assert enrolled / len(units) == pytest.approx(coverage, abs=0.02)
    assert len(seen) == len(units)


def test_weight_change_moves_some_units_which_is_why_it_is_a_new_phase():
    before, after = a.Assigner("phase", [0.5, 0.5]), a.Assigner("phase", [0.2, 0.8])
    moved = sum(before.assign(str(i)) != after.assign(str(i)) for i in range(10000))
    assert 2500 < moved < 3500  # the 0.2..0.5 slice, ~30%


def test_two_tests_with_different_seeds_assign_independently():
    ids = [f"id-{i}" for i in range(40000)]
    x, y = a.Assigner("exp-a", [0.5, 0.5]), a.Assigner("exp-b", [0.5, 0.5])
    table = np.zeros((2, 2))
    for u in ids:
        table[x.assign(u), y.assign(u)] += 1
    assert st.chi2_contingency(table).pvalue > 0.001


def test_v1_correlates_across_seeds_which_is_why_cellar_uses_v2():
    ids = [str(i) for i in range(40000)]
    ranges = a.bucket_ranges(2)
    table = np.zeros((2, 2))
    for u in ids:
        table[
            a.choose_variation(a.hash_value("exp-a", u, 1), ranges),
            a.choose_variation(a.hash_value("exp-b", u, 1), ranges),
        ] += 1
    assert st.chi2_contingency(table).pvalue < 1e-6
