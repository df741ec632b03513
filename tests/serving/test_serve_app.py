"""serve's predict path in-process (no sockets): A/B grouping and shadows, a raising model, a
failing assignment, routing tables' fallback to the last good versions."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from cellar.models import LoadedModel, Signature
from cellar_worker.serve import abtest
from cellar_worker.serve.app import ServeApp
from cellar_worker.serve.config import ServeConfig
from cellar_worker.serve.loader import Predictor
from cellar_worker.serve.routing import build_table

KEY = "cdk_test_key"
SIGNATURE = Signature.from_dict({"inputs": '[{"type": "double", "name": "x", "required": true}]'})


class Scale:
    def __init__(self, factor: float):
        self.factor = factor
        self.calls = 0

    def predict(self, frame):
        self.calls += 1
        return [v * self.factor for v in frame["x"]]


class Raising:
    def predict(self, frame):
        raise RuntimeError("model bug")


def predictor(version_id: str, raw) -> Predictor:
    return Predictor(version_id, LoadedModel(raw, "cellar", SIGNATURE, {}), {"id": version_id})


def manifest(routes: dict[str, float], extensions=None) -> dict:
    return {
        "id": 1,
        "team": "acme",
        "deployment": "d",
        "routes": [{"version_id": v, "weight": w} for v, w in routes.items()],
        "keys": [hashlib.sha256(KEY.encode()).hexdigest()],
        "sample_rate": 0.0,
        "extensions": extensions or {},
    }


@pytest.fixture
def app(tmp_path):
    return ServeApp(ServeConfig(api_url="http://127.0.0.1:9", token="t", cache_dir=tmp_path))


def call(app, payload, after=None):
    return app.predict("acme", "d", KEY, orjson.dumps(payload), after)


def test_rows_with_unit_ids_go_to_their_arm_and_shadows_run_after(app, monkeypatch):
    control, treatment, shadow = Scale(1), Scale(10), Scale(100)
    loaded = {"1": predictor("1", control), "2": predictor("2", treatment), "3": predictor("3", shadow)}
    app.state.tables = {("acme", "d"): build_table(manifest({"1": 1}, {"abtest": {"test": 7}}), loaded, None)}

    def assign(block, unit_id):
        assert block == {"test": 7}
        if unit_id == "u-out":
            return None
        arm = int(unit_id[-1]) % 2
        return ("2", "treatment", True, []) if arm else ("1", "control", True, ["3"])

    monkeypatch.setattr(abtest, "assign", assign)
    after = []
    rows = [{"x": 1.0, "unit_id": "u1"}, {"x": 2.0, "unit_id": "u2"}, {"x": 3.0}, {"x": 4.0, "unit_id": "u-out"}]
    status, body = call(app, rows, after)
    assert status == 200
    assert body["predictions"] == [10.0, 2.0, 3.0, 4.0]
    assert body["versions"] == ["2", "1", "1", "1"]
    assert body["variants"] == ["treatment", "control", None, None]
    assert shadow.calls == 0 and len(after) == 1  # the shadow waits for the response
    after[0]()
    assert shadow.calls == 1


def test_a_failing_assignment_falls_back_to_routing(app, monkeypatch):
    loaded = {"1": predictor("1", Scale(1))}
    app.state.tables = {("acme", "d"): build_table(manifest({"1": 1}, {"abtest": {}}), loaded, None)}

    def broken(block, unit_id):
        raise KeyError("bug")

    monkeypatch.setattr(abtest, "assign", broken)
    status, body = call(app, [{"x": 2.0, "unit_id": "u1"}])
    assert status == 200 and body["versions"] == ["1"]


def test_a_raising_model_is_a_500_for_that_request_only(app):
    app.state.tables = {("acme", "d"): build_table(manifest({"1": 1}), {"1": predictor("1", Raising())}, None)}
    status, body = call(app, [{"x": 1.0}])
    assert status == 500 and body["error"]["code"] == "prediction_failed" and "model bug" in body["error"]["message"]
    app.state.tables = {("acme", "d"): build_table(manifest({"1": 1}), {"1": predictor("1", Scale(2))}, None)}
    assert call(app, [{"x": 1.0}]) == (200, {"deployment": "d", "predictions": [2.0], "versions": ["1"]})


def test_tables_keep_the_last_good_versions_when_nothing_new_loaded():
    good = build_table(manifest({"1": 1}), {"1": predictor("1", Scale(1))}, None)
    # The new manifest routes only to version 2, which did not load: version 1 keeps serving.
    kept = build_table(manifest({"2": 1}), {}, good)
    assert kept.routed == ("1",) and kept.choose().version_id == "1"
    # Some loaded: they share the weight of the ones that did not.
    partial = build_table(manifest({"1": 0.5, "2": 0.5}), {"1": predictor("1", Scale(1))}, good)
    assert partial.routed == ("1",) and partial.cumulative == (1.0,)
    assert build_table(manifest({"2": 1}), {}, None) is None
