"""The same per-arm sums as aggregates.py, in Python, for the single-machine SQLite default
(small data; PostgreSQL does it in one query per metric)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np

from cellar_server.abtests.models import ABTest, Event, Exposure, Metric

_TRUNC = {"minute": {"second": 0, "microsecond": 0}, "hour": {"minute": 0, "second": 0, "microsecond": 0}}


def _bucket(at: datetime, grain: str) -> datetime:
    if grain == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(**_TRUNC[grain])


def per_arm_rows(*, test: ABTest, phase: int, metrics: list[Metric], grain: str, pre_period: timedelta) -> list:
    units = list(Exposure.all_teams.filter(test=test, phase=phase).values_list("unit_id", "arm", "first_at"))
    out: list = []
    counts: dict = defaultdict(int)
    for _, arm, first in units:
        counts[(arm, _bucket(first, grain))] += 1
    out += [("", (arm, b, n, 0, 0, 0, 0, 0)) for (arm, b), n in counts.items()]
    for metric in metrics:
        names = {metric.name, metric.denominator or metric.name}
        events = defaultdict(list)
        for unit, name, value, at in Event.all_teams.filter(test=test, name__in=names).values_list(
            "unit_id", "name", "value", "at"
        ):
            events[unit].append((name, value, at))
        window = timedelta(hours=metric.window_hours)
        per_unit = []
        for unit, arm, first in units:
            y = x = 0.0
            for name, value, at in events.get(unit, ()):
                in_window = first <= at < first + window
                if name == metric.name and in_window:
                    y += value
                if metric.kind == Metric.RATIO:
                    if name == metric.denominator and in_window:
                        x += value
                elif metric.cuped and name == metric.name and first - pre_period <= at < first:
                    x += value
            if metric.kind == Metric.PROPORTION:
                y, x = float(y > 0), float(x > 0)
            per_unit.append((arm, _bucket(first, grain), y, x))
        if metric.winsorize_percentile:
            nonzero = [y for _, _, y, _ in per_unit if y != 0]
            cap = float(np.quantile(nonzero, metric.winsorize_percentile)) if nonzero else 0.0
            per_unit = [(a, b, min(y, cap), min(x, cap)) for a, b, y, x in per_unit]
        sums: dict = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0, 0.0])
        for arm, b, y, x in per_unit:
            s = sums[(arm, b)]
            s[0] += 1
            s[1] += y
            s[2] += y * y
            s[3] += x
            s[4] += x * x
            s[5] += x * y
        out += [(metric.name, (arm, b, *s)) for (arm, b), s in sums.items()]
    return out
