"""Step-bucket summaries: kept right under retries and out-of-order logging, and charts drawn
from them keep every history's lowest and highest points."""

from __future__ import annotations

import math
import random

import pytest

from cellar_server.tracking import curves
from cellar_server.tracking.models import MetricBucket
from cellar_server.tracking.services import experiments, runs

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(team):
    exp = experiments.experiment_ensure_default(team=team)
    return runs.run_create(team=team, experiment=exp, run_name="curves")


def _log(run, points, key="loss"):
    for start in range(0, len(points), 1000):
        batch = [{"key": key, "value": v, "timestamp": 1, "step": s} for s, v in points[start : start + 1000]]
        runs.run_log_batch(run=run, metrics=batch)


def _expected(points, width):
    buckets = {}
    for step, value in points:
        if isinstance(value, str) or math.isnan(value):
            continue
        buckets.setdefault(step // width, []).append((step, value))
    result = {}
    for bucket, pairs in buckets.items():
        pairs.sort()
        low = min(pairs, key=lambda p: p[1])
        high = max(pairs, key=lambda p: p[1])
        result[bucket] = (pairs[0], pairs[-1], low[1], high[1])
    return result


def _stored(run, width):
    rows = MetricBucket.objects.filter(run=run, key="loss", width=width)
    return {
        b.bucket: ((b.first_step, b.first_value), (b.last_step, b.last_value), b.min_value, b.max_value) for b in rows
    }


def test_summaries_under_shuffle_and_retry(run):
    rng = random.Random(7)
    points = [(step, rng.gauss(0, 1)) for step in range(5000)]
    points[1234] = (1234, 50.0)  # a spike
    points[4321] = (4321, -50.0)  # a dip
    points.append((77, "NaN"))  # NaN is not drawn, so not summarized
    shuffled = points[:]
    rng.shuffle(shuffled)
    _log(run, shuffled)
    _log(run, shuffled[:2000])  # a client retrying part of it
    for width in curves.WIDTHS:
        assert _stored(run, width) == _expected(points, width), width


def test_curve_keeps_extremes_in_step_order(run):
    rng = random.Random(3)
    points = [(step, math.sin(step / 500) + rng.random() / 10) for step in range(20_000)]
    points[15_001] = (15_001, 9.0)
    points[333] = (333, -9.0)
    _log(run, points)
    got, rows_read = curves.load_curves([run.pk], "loss", per_curve=200)
    steps, values = got[run.pk]
    assert len(steps) <= 200 and steps == sorted(steps)
    assert max(values) == 9.0 and steps[values.index(9.0)] == 15_001
    assert min(values) == -9.0 and steps[values.index(-9.0)] == 333
    assert steps[0] == 0 and steps[-1] == 19_999
    assert rows_read < 1000  # summaries, not the 20,000 points


def test_short_histories_are_read_raw(run):
    _log(run, [(s, float(s)) for s in range(30)])
    got, rows_read = curves.load_curves([run.pk], "loss", per_curve=100)
    assert got[run.pk] == (list(range(30)), [float(s) for s in range(30)]) and rows_read == 30


@pytest.mark.parametrize(
    "span,per_curve,runs,width",
    [
        (10, 50, 100, 1),
        (3_999, 1000, 5, 1),
        (16_000, 1000, 1, 1),  # one run's chart draws up to RAW_POINTS steps from every point
        (5_000, 1000, 5, 256),
        (20_000, 1000, 1, 256),
        (10_000, 50, 100, 1024),
        (100_000, 1000, 1, 1024),
        (10**9, 50, 100, 65536),
    ],
)
def test_width_choice(span, per_curve, runs, width):
    assert curves.width_for(span, per_curve, runs) == width
