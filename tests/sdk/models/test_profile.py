"""Reference profiles: fixed bin edges, counts, quantiles and categorical tops, on known data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cellar.models import reference_profile


def test_numeric_feature_deciles_counts_and_summary() -> None:
    values = list(range(1, 101))  # 1..100
    profile = reference_profile({"x": values})
    feature = profile["features"]["x"]
    assert profile["n_rows"] == 100 and feature["kind"] == "numeric"
    assert feature["mean"] == pytest.approx(50.5)
    assert feature["std"] == pytest.approx(np.std(values))
    assert feature["min"] == 1.0 and feature["max"] == 100.0
    assert feature["quantiles"]["0.5"] == pytest.approx(50.5)
    assert len(feature["bins"]["edges"]) == 9
    assert feature["bins"]["counts"] == [10] * 10
    assert sum(feature["bins"]["counts"]) == feature["count"] == 100
    json.dumps(profile)  # stored as JSON


def test_nulls_are_counted_apart_and_categoricals_keep_top_values() -> None:
    frame = pd.DataFrame({"x": [1.0, None, 3.0, np.nan], "city": ["a", "b", "a", None]})
    profile = reference_profile(frame)
    assert profile["features"]["x"]["null_fraction"] == 0.5
    city = profile["features"]["city"]
    assert city["kind"] == "categorical"
    assert city["top"] == {"a": 2, "b": 1} and city["null_fraction"] == 0.25 and city["distinct"] == 2


def test_many_categories_fold_into_other() -> None:
    values = [f"c{i}" for i in range(30)] * 2 + ["c0"]
    city = reference_profile([{"city": v} for v in values])["features"]["city"]
    assert len(city["top"]) == 20 and city["top"]["c0"] == 3
    assert city["other"] == 61 - sum(city["top"].values())


def test_constant_feature_has_one_edge_and_all_counts_in_it() -> None:
    feature = reference_profile(np.ones((5, 1)))["features"]["x0"]
    assert feature["bins"]["edges"] == [1.0]
    assert feature["bins"]["counts"] == [5, 0]
