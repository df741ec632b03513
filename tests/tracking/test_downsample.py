"""The metric-history downsampler: bounded size, extremes kept, step order kept."""

from __future__ import annotations

import math
import random

import pytest

from cellar_server.tracking.downsample import downsample, points_per_curve


def _is_subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def test_short_histories_come_back_whole():
    steps, values = [0, 1, 2], [0.5, 0.25, 0.125]
    assert downsample(steps, values, max_points=1000) == (steps, values)
    assert downsample([], [], max_points=10) == ([], [])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_100k_history_keeps_min_max_and_order(seed):
    rng = random.Random(seed)
    steps = list(range(100_000))
    values = [math.sin(s / 500) + rng.gauss(0, 0.1) for s in steps]
    spike, dip = rng.randrange(100_000), rng.randrange(100_000)
    values[spike], values[dip] = 50.0, -50.0  # one-step outliers a stride sampler would miss

    kept_steps, kept_values = downsample(steps, values, max_points=1000)

    assert len(kept_steps) == len(kept_values) <= 1000
    assert max(kept_values) == 50.0 and kept_steps[kept_values.index(50.0)] == spike
    assert min(kept_values) == -50.0 and kept_steps[kept_values.index(-50.0)] == dip
    assert kept_steps == sorted(kept_steps) and len(set(kept_steps)) == len(kept_steps)
    assert kept_steps[0] == 0 and kept_steps[-1] == 99_999  # the ends are kept
    assert all(values[s] == v for s, v in zip(kept_steps, kept_values, strict=True))  # real points, not averages


def test_each_bucket_keeps_its_own_extremes():
    # 4 buckets of 10 steps; every bucket has its own peak and trough somewhere inside.
    steps = list(range(40))
    values = [float((s * 7) % 10) for s in steps]
    kept_steps, kept_values = downsample(steps, values, max_points=16)
    for bucket in range(4):
        inside = [v for s, v in zip(kept_steps, kept_values, strict=True) if bucket * 10 <= s < bucket * 10 + 10]
        assert min(inside) == 0.0 and max(inside) == 9.0
        assert bucket * 10 in kept_steps and bucket * 10 + 9 in kept_steps  # first and last of the bucket


def test_buckets_follow_the_step_range_not_the_point_count():
    # Dense logging early, sparse later: the sparse stretch still gets its share of the buckets.
    steps = list(range(10_000)) + list(range(10_000, 1_000_000, 1000))
    values = [float(s % 97) for s in steps]
    kept_steps, _ = downsample(steps, values, max_points=400)
    late = [s for s in kept_steps if s >= 10_000]
    assert len(late) > 300  # 99% of the range → most of the 100 buckets


def test_repeated_steps_and_unstepped_metrics():
    # Several values at one step are fine; a metric logged without steps (all 0) thins out by position.
    steps = [0] * 5000
    values = [float(i % 13) for i in range(5000)]
    values[4321] = 99.0
    kept_steps, kept_values = downsample(steps, values, max_points=200)
    assert len(kept_values) <= 200 and 99.0 in kept_values and min(kept_values) == 0.0
    assert _is_subsequence(kept_values, values)


def test_infinities_survive_as_extremes():
    steps = list(range(5000))
    values = [0.0] * 5000
    values[10], values[20] = math.inf, -math.inf
    _, kept_values = downsample(steps, values, max_points=100)
    assert math.inf in kept_values and -math.inf in kept_values


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        downsample([1, 2], [1.0])


@pytest.mark.parametrize(
    "curves,expected", [(1, 1000), (6, 1000), (10, 600), (100, 60), (1000, 48)], ids=["1", "6", "10", "100", "1000"]
)
def test_points_per_curve_shares_the_budget(curves, expected):
    assert points_per_curve(curves, budget=6000, floor=48) == expected
