"""Aggregates in SQL vs per-unit sums computed here from the raw rows; the decision rule;
the manifest block for serve and the champion freeze."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cellar import abstats
from cellar_server.abtests import aggregates, analysis, ingest, integration
from cellar_server.abtests.aggregates_python import per_arm_rows
from cellar_server.abtests.models import ArmAggregate, Metric

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
METRICS = [
    {"name": "converted", "kind": "proportion", "role": "primary", "window_hours": 24},
    {"name": "revenue", "kind": "mean", "role": "secondary", "window_hours": 24},
    {"name": "revenue_capped", "kind": "mean", "role": "secondary", "window_hours": 24, "winsorize_percentile": 0.9},
    {"name": "clicks", "kind": "ratio", "role": "guardrail", "denominator": "views", "window_hours": 24},
]


def _expose(test, units):
    records = [{"test_id": test.pk, "phase": 1, "unit_id": u, "arm": arm, "at": at.isoformat()} for u, arm, at in units]
    assert ingest.exposures_ingest(records=records)["stored"] == len(units)


def _send(test, events):
    for i in range(0, len(events), 5000):
        ingest.events_ingest(test=test, events=events[i : i + 5000])


@pytest.fixture
def scenario(make_test):
    rng = np.random.default_rng(3)
    test = make_test(metrics=METRICS)
    units = [(f"u{i}", i % 2, T0 + timedelta(minutes=int(rng.integers(0, 120)))) for i in range(400)]
    _expose(test, units)
    events = []
    for u, arm, first in units:
        for k in range(int(rng.integers(0, 4))):
            offset = timedelta(hours=float(rng.uniform(-48, 36)))  # before exposure, in window, after window
            events.append(
                {
                    "id": f"{u}-r{k}",
                    "unit_id": u,
                    "name": "revenue",
                    "value": float(rng.lognormal(2, 1)),
                    "at": (first + offset).isoformat(),
                }
            )
            events.append(
                {
                    "id": f"{u}-rc{k}",
                    "unit_id": u,
                    "name": "revenue_capped",
                    "value": float(rng.lognormal(2, 1)),
                    "at": (first + offset).isoformat(),
                }
            )
        if rng.random() < 0.2 + 0.1 * arm:
            events.append(
                {
                    "id": f"{u}-c",
                    "unit_id": u,
                    "name": "converted",
                    "value": 1,
                    "at": (first + timedelta(hours=2)).isoformat(),
                }
            )
        views = int(rng.integers(1, 6))
        events += [
            {
                "id": f"{u}-v{k}",
                "unit_id": u,
                "name": "views",
                "value": 1,
                "at": (first + timedelta(minutes=k + 1)).isoformat(),
            }
            for k in range(views)
        ]
        clicks = int(rng.binomial(views, 0.3))
        events += [
            {
                "id": f"{u}-k{k}",
                "unit_id": u,
                "name": "clicks",
                "value": 1,
                "at": (first + timedelta(minutes=k + 2)).isoformat(),
            }
            for k in range(clicks)
        ]
    # never exposed: stored, ignored
    events += [
        {"id": f"ghost{i}", "unit_id": f"ghost{i}", "name": "converted", "value": 1, "at": T0.isoformat()}
        for i in range(50)
    ]
    _send(test, events)
    return test, units, events


def _oracle(units, events, metric):
    """n, Σy, Σy², Σx, Σx², Σxy per arm from the raw rows (x: 14-day pre-period or the ratio's denominator)."""
    by_unit = {}
    for e in events:
        by_unit.setdefault(e["unit_id"], []).append(e)
    window = timedelta(hours=metric["window_hours"])
    values = {0: [], 1: []}
    for u, arm, first in units:
        y = x = 0.0
        for e in by_unit.get(u, []):
            at = datetime.fromisoformat(e["at"])
            inside = first <= at < first + window
            if e["name"] == metric["name"] and inside:
                y += e["value"]
            if metric["kind"] == "ratio" and e["name"] == metric["denominator"] and inside:
                x += e["value"]
            if metric["kind"] != "ratio" and e["name"] == metric["name"] and first - timedelta(days=14) <= at < first:
                x += e["value"]
        if metric["kind"] == "proportion":
            y, x = float(y > 0), float(x > 0)
        values[arm].append((y, x))
    if metric.get("winsorize_percentile"):
        ys = [y for arm in values.values() for y, _ in arm if y != 0]
        cap = float(np.quantile(ys, metric["winsorize_percentile"]))
        values = {a: [(min(y, cap), min(x, cap)) for y, x in v] for a, v in values.items()}
    out = {}
    for arm, pairs in values.items():
        y = np.array([p[0] for p in pairs])
        x = np.array([p[1] for p in pairs])
        out[arm] = [len(y), y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum()]
    return out


def _stored(test, name):
    total = {}
    for r in ArmAggregate.all_teams.filter(test=test, metric=name):
        s = total.setdefault(r.arm, [0.0] * 6)
        for i, v in enumerate((r.n, r.y_sum, r.y_sum_sq, r.x_sum, r.x_sum_sq, r.xy_sum)):
            s[i] += v
    return total


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m["name"])
def test_sql_aggregates_equal_the_raw_per_unit_sums(scenario, metric):
    test, units, events = scenario
    aggregates.aggregates_refresh(test=test)
    expected = _oracle(units, events, metric)
    stored = _stored(test, metric["name"])
    for arm in (0, 1):
        assert stored[arm] == pytest.approx(expected[arm], rel=1e-9), (metric["name"], arm)
    # the SQLite path (Python) gives the same sums
    python_rows = per_arm_rows(
        test=test, phase=1, metrics=list(Metric.all_teams.filter(test=test, name=metric["name"])), grain="minute",
        pre_period=aggregates.PRE_PERIOD,
    )  # fmt: skip
    python = {}
    for name, (arm, _b, *vals) in python_rows:
        if name == metric["name"]:
            python.setdefault(arm, [0.0] * 6)
            python[arm] = [a + b for a, b in zip(python[arm], vals, strict=True)]
    for arm in (0, 1):
        assert python[arm] == pytest.approx(expected[arm], rel=1e-9)


def test_analysis_runs_the_statistics_on_those_sums(scenario):
    test, units, events = scenario
    aggregates.aggregates_refresh(test=test)
    result = analysis.analyse(test=test)
    assert [a["units"] for a in result["arms"]] == [200, 200]
    exp = _oracle(units, events, METRICS[1])

    def arm_stat(s):
        return abstats.RegressionAdjusted(
            post=abstats.SampleMean(int(s[0]), s[1], s[2]),
            pre=abstats.SampleMean(int(s[0]), s[3], s[4]),
            post_pre_sum=s[5],
        )

    want = abstats.welch(arm_stat(exp[0]), arm_stat(exp[1]))
    got = next(m for m in result["metrics"] if m["name"] == "revenue")["comparisons"][0]["frequentist"]
    assert got["lift"] == pytest.approx(want.lift) and got["p_value"] == pytest.approx(want.p_value)
    secondaries = [m for m in result["metrics"] if m["role"] == "secondary"]
    ps = [m["comparisons"][0]["frequentist"]["p_value"] for m in secondaries]
    assert [m["comparisons"][0]["frequentist"]["adjusted_p_value"] for m in secondaries] == abstats.benjamini_hochberg(
        ps
    )
    assert [m["comparisons"][0]["frequentist"]["holm_p_value"] for m in secondaries] == abstats.holm(ps)
    assert result["timeline"]["metric"] == "converted" and result["timeline"]["series"][0]["points"]
    assert "sequential" in result["method"] and "Bayesian" in result["method"]


def _bulk(test, n_per_arm, rates, *, counts=None, guardrail=None):
    counts = counts or (n_per_arm, n_per_arm)
    units = [(f"a{arm}-{i}", arm, T0) for arm in (0, 1) for i in range(counts[arm])]
    _expose(test, units)
    rng = np.random.default_rng(5)
    events = []
    for u, arm, _ in units:
        if rng.random() < rates[arm]:
            events.append(
                {
                    "id": f"{u}-c",
                    "unit_id": u,
                    "name": "converted",
                    "value": 1,
                    "at": (T0 + timedelta(hours=1)).isoformat(),
                }
            )
        if guardrail:
            events.append(
                {
                    "id": f"{u}-l",
                    "unit_id": u,
                    "name": "latency_ms",
                    "value": float(rng.normal(guardrail[arm], 5)),
                    "at": (T0 + timedelta(minutes=1)).isoformat(),
                }
            )
    _send(test, events)
    aggregates.aggregates_refresh(test=test)
    return analysis.analyse(test=test)["decision"]


GUARD = {"name": "latency_ms", "kind": "mean", "role": "guardrail", "higher_is_better": False, "cuped": False}


def test_ready_when_the_challenger_clearly_wins(make_test):
    decision = _bulk(make_test(), 3000, (0.10, 0.16))
    assert decision == {"state": "ready", "winner": "b", "summary": "'b' beats control on converted."}


def test_a_worse_guardrail_blocks_promotion(make_test):
    decision = _bulk(make_test(metrics=[METRICS[0], GUARD]), 3000, (0.10, 0.16), guardrail=(50, 60))
    assert decision["state"] == "guardrail_failed" and "latency_ms" in decision["summary"]


def test_sample_ratio_mismatch_blocks_promotion(make_test):
    decision = _bulk(make_test(), 0, (0.10, 0.16), counts=(3000, 2600))
    assert decision["state"] == "srm_failed"


def test_no_difference_is_inconclusive(make_test):
    assert _bulk(make_test(), 1500, (0.10, 0.10))["state"] == "inconclusive"


def test_manifest_block_and_champion_freeze(make_test, team, members, deployment, versions):
    from cellar_server.core.exceptions import ServiceError
    from cellar_server.registry import services as registry
    from cellar_server.registry.selectors import model_for_name
    from cellar_server.serving.selectors import route_manifests
    from cellar_server.teams.actors import Actor

    test = make_test()
    body, _ = route_manifests()
    manifest = next(d for d in body["deployments"] if d["deployment"] == "ranker-api")
    block = manifest["extensions"]["abtest"]
    assert block["seed"] == "seed-1" and block["phase"] == 1 and block["control_version_id"] == versions["ranker"][0]
    assert [v["weight"] for v in block["variants"]] == [0.5, 0.5]
    assert set(manifest["models"]) >= set(versions["ranker"][:2])
    actor = Actor(user=members["admin"])
    model = model_for_name(team=team, name="ranker")
    with pytest.raises(ServiceError) as err:
        registry.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=3)
    assert "ranker v2 vs v1" in err.value.message and err.value.status_code == 409
    registry.model_alias_set(team=team, actor=actor, model=model, alias="staging", version=3)  # other aliases move
    from cellar_server.abtests.services import abtest_stop

    abtest_stop(test=test, actor=actor)
    registry.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=3)
    body, _ = route_manifests()
    assert "abtest" not in next(d for d in body["deployments"] if d["deployment"] == "ranker-api")["extensions"]
    assert integration.champion_guard(team, model, "champion", None) is None


def test_the_beat_task_refreshes_running_tests_only(make_test):
    from cellar_server.abtests.models import ABTest
    from cellar_server.abtests.tasks import abtests_refresh

    running = make_test()
    _expose(running, [("x1", 0, T0), ("x2", 1, T0)])
    ABTest.all_teams.filter(pk=running.pk).update(refreshed_at=None)
    assert abtests_refresh() == 1
    assert ArmAggregate.all_teams.filter(test=running, metric="").count() == 2
    ABTest.all_teams.filter(pk=running.pk).update(status=ABTest.STOPPED)
    assert abtests_refresh() == 0


def test_three_arms_pick_the_challenger_that_wins(make_test, versions):
    v = versions["ranker"]
    test = make_test(variants=[{"version_id": v[0], "weight": 0.34}, {"version_id": v[1], "weight": 0.33},
                               {"version_id": v[2], "weight": 0.33}])  # fmt: skip
    rng = np.random.default_rng(9)
    counts, rates = (3400, 3300, 3300), (0.10, 0.10, 0.16)
    units = [(f"t{arm}-{i}", arm, T0) for arm in range(3) for i in range(counts[arm])]
    _expose(test, units)
    at = (T0 + timedelta(hours=1)).isoformat()
    _send(test, [{"id": f"{u}-c", "unit_id": u, "name": "converted", "value": 1, "at": at}
                 for u, arm, _ in units if rng.random() < rates[arm]])  # fmt: skip
    aggregates.aggregates_refresh(test=test)
    result = analysis.analyse(test=test)
    assert [a["key"] for a in result["arms"]] == ["control", "b", "c"]
    assert result["decision"]["state"] == "ready" and result["decision"]["winner"] == "c"
    assert [c["verdict"] for c in result["metrics"][0]["comparisons"]] == [0, 1]
