"""The serve-side module on its own: what `assign` returns per case and which exposures it records."""

import pytest

from cellar.abstats.assignment import Assigner
from cellar_worker.serve import abtest


def block(**overrides):
    b = {
        "test_id": 7,
        "seed": "s",
        "hash_version": 2,
        "phase": 1,
        "coverage": 1.0,
        "shadow": False,
        "control_version_id": "10",
        "variants": [
            {"key": "control", "version_id": "10", "weight": 0.5},
            {"key": "b", "version_id": "11", "weight": 0.5},
        ],
    }
    b.update(overrides)
    return b


@pytest.fixture(autouse=True)
def _fresh():
    abtest.close()
    abtest._pending.clear()
    yield
    abtest.close()
    abtest._pending.clear()


def test_enrolled_units_get_their_arm_and_one_exposure_per_phase():
    units = [f"u{i}" for i in range(200)]
    for _ in range(3):
        for u in units:
            version, key, enrolled, shadows = abtest.assign(block(), u)
            arm = Assigner("s", [0.5, 0.5]).assign(u)
            assert (version, key, enrolled, shadows) == (["10", "11"][arm], ["control", "b"][arm], True, [])
    assert len(abtest._pending) == 200
    assert {r["unit_id"] for r in abtest._pending} == set(units)
    phase2 = block(phase=2, variants=[{**v, "weight": w} for v, w in zip(block()["variants"], (0.2, 0.8), strict=True)])
    for u in units[:10]:  # a new phase (weights changed): first exposure again
        abtest.assign(phase2, u)
    assert len(abtest._pending) == 210 and abtest._pending[-1]["phase"] == 2


def test_outside_coverage_is_control_and_not_enrolled():
    outside = next(u for u in (f"u{i}" for i in range(1000)) if Assigner("s", [0.5, 0.5], 0.1).assign(u) == -1)
    assert abtest.assign(block(coverage=0.1), outside) == ("10", None, False, [])
    assert abtest._pending == []
    assert abtest.assign(block(), None) is None and abtest.assign(None, "u1") is None


def test_shadow_mode_answers_with_control_and_mirrors_the_arm():
    units = [f"u{i}" for i in range(100)]
    results = [abtest.assign(block(shadow=True), u) for u in units]
    assert {r[0] for r in results} == {"10"}
    assert {tuple(r[3]) for r in results if r[1] == "b"} == {("11",)}
    assert {tuple(r[3]) for r in results if r[1] == "control"} == {()}
