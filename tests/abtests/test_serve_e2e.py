"""End to end with real processes: the serve process (subprocess) assigns units with the test's
seed and weights, flushes first exposures to the web process (live server), the traffic
simulator sends outcomes with a known true effect through `cellar.track`'s batcher, the known
better model becomes "ready", and "Promote winner" moves serve's traffic to it."""

from __future__ import annotations

import pytest

from cellar.abstats.assignment import Assigner
from cellar.abstats.simulate import simulate
from cellar.client import Client
from cellar_server.abtests.models import Exposure
from cellar_server.abtests.services import abtest_create, abtest_set_coverage
from cellar_server.registry import services as registry
from cellar_server.registry.selectors import model_for_name, model_version_get
from cellar_server.serving.credentials import serve_token
from cellar_server.teams.actors import Actor
from tests.factories import mint_token
from tests.serving.conftest import constant_model, mint_key, register_version, start_serve, training_data

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

ROW = {"age": 41.0, "income": 52.5, "tenure": 3.0}


@pytest.fixture
def stack(live_server, tmp_path, team, members):
    store = tmp_path / "artifacts"
    store.mkdir(exist_ok=True)
    frame = training_data()[0]
    admin = Actor(user=members["admin"])
    v1 = register_version(team, "churn", constant_model(1.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path)
    v2 = register_version(team, "churn", constant_model(2.0, frame), frame, store_url=f"file://{store}", tmp=tmp_path)
    registry.model_alias_set(
        team=team, actor=admin, model=model_for_name(team=team, name="churn"), alias="champion", version=1
    )
    from cellar_server.serving.services import deployment_create

    deployment = deployment_create(
        team=team, actor=admin, name="churn-api", routes=[{"version_id": str(v1.pk), "weight": 1}]
    )
    key = mint_key(team, deployment)
    serve = start_serve(api_url=live_server.url, store_dir=store, home=tmp_path, token=serve_token())
    yield {"serve": serve, "key": key, "v1": str(v1.pk), "v2": str(v2.pk), "admin": admin, "url": live_server.url}
    serve.stop()


def _start_test(team, stack, **kw):
    return abtest_create(
        team=team,
        actor=stack["admin"],
        deployment_name="churn-api",
        name="churn v2 vs v1",
        variants=[{"version_id": stack["v1"], "weight": 0.5}, {"version_id": stack["v2"], "weight": 0.5}],
        metrics=[{"name": "converted", "kind": "proportion", "role": "primary"}],
        seed="e2e-seed",
        sequential_n_star=2000,
        **kw,
    )


def _wait_for_arms(serve, stack):
    serve.wait_for(
        lambda: any(
            serve.predict("acme", "churn-api", [{**ROW, "unit_id": "probe"}], stack["key"])
            .json()
            .get("variants", [None])
        ),
        what="serve to load both arms of the test",
    )


def test_serve_assigns_like_growthbook_and_records_first_exposures(stack, team):
    serve = stack["serve"]
    test = _start_test(team, stack)
    _wait_for_arms(serve, stack)
    assigner = Assigner("e2e-seed", [0.5, 0.5])
    units = [f"user-{i}" for i in range(300)]
    rows = [{**ROW, "unit_id": u} for u in units]
    for _ in range(2):  # the same units twice: sticky, and still one exposure each
        body = serve.predict("acme", "churn-api", {"dataframe_records": rows}, stack["key"]).json()
        expected = [[stack["v1"], stack["v2"]][assigner.assign(u)] for u in units]
        assert body["versions"] == expected
        assert body["predictions"] == [1.0 if v == stack["v1"] else 2.0 for v in expected]
    no_unit = serve.predict("acme", "churn-api", [ROW], stack["key"]).json()
    assert no_unit["versions"] == [stack["v1"]]
    serve.wait_for(lambda: Exposure.all_teams.filter(test=test).count() >= 301, what="exposures flushed")
    exposures = dict(Exposure.all_teams.filter(test=test).values_list("unit_id", "arm"))
    assert len(exposures) == 301  # 300 units + the probe; the unit-less row is not enrolled
    assert all(exposures[u] == assigner.assign(u) for u in units)

    # Coverage down to 20%: enrolled units that stay covered keep their arm; the rest get control.
    abtest_set_coverage(test=test, actor=stack["admin"], coverage=0.2)
    narrow = Assigner("e2e-seed", [0.5, 0.5], 0.2)
    serve.wait_for(
        lambda: (
            serve.predict("acme", "churn-api", {"dataframe_records": rows}, stack["key"]).json()["versions"]
            == [[stack["v1"], stack["v2"]][max(narrow.assign(u), 0)] for u in units]
        ),
        what="the coverage change",
    )
    assert all(narrow.assign(u) in (-1, assigner.assign(u)) for u in units)


def test_simulated_test_becomes_ready_and_promote_moves_traffic(stack, team, members, api_as):
    serve = stack["serve"]
    test = _start_test(team, stack)
    _wait_for_arms(serve, stack)
    _, raw = mint_token(team, members["editor"], scopes=["experiments:write", "abtests:read"])
    client = Client(stack["url"], raw)
    summary = simulate(
        client=client, team="acme", deployment="churn-api", test=test.pk, serve_url=serve.url, key=stack["key"],
        units=3000, effect=0.8, base_rate=0.1, row=ROW, seed=1,
    )  # fmt: skip
    assert set(summary["by_version"]) == {stack["v1"], stack["v2"]}
    serve.wait_for(lambda: Exposure.all_teams.filter(test=test).count() >= 3001, what="exposures flushed")

    admin = api_as(members["admin"])
    results = admin.get(f"/api/v1/teams/acme/ab-tests/{test.pk}/results/?refresh=1").json()
    assert not results["srm"]["alert"]
    assert results["decision"]["state"] == "ready" and results["decision"]["winner"] == "b", results["decision"]
    lift = results["metrics"][0]["comparisons"][0]["sequential"]
    assert lift["ci"][0] > 0 and lift["ci"][0] < 0.8 < lift["ci"][1] + 0.5  # the true effect is +80%

    r = admin.post(f"/api/v1/teams/acme/ab-tests/{test.pk}/promote/", {}, format="json")
    assert r.status_code == 200, r.content
    assert model_version_get(team=team, name="churn", alias="champion").version == 2
    control_unit = next(u for u in (f"sim-{i}" for i in range(100)) if Assigner("e2e-seed", [0.5, 0.5]).assign(u) == 0)
    serve.wait_for(
        lambda: (
            serve.predict("acme", "churn-api", [{**ROW, "unit_id": control_unit}], stack["key"]).json()["versions"]
            == [stack["v2"]]
        ),
        what="traffic on the winner",
    )
    assert serve.predict("acme", "churn-api", [ROW], stack["key"]).json()["predictions"] == [2.0]


def test_shadow_mode_returns_control_answers_and_mirrors_to_the_challenger(stack, team):
    from cellar_server.serving.models import PredictionMinute

    serve = stack["serve"]
    test = _start_test(team, stack, shadow=True)
    _wait_for_arms(serve, stack)
    rows = [{**ROW, "unit_id": f"s{i}"} for i in range(200)]
    body = serve.predict("acme", "churn-api", {"dataframe_records": rows}, stack["key"]).json()
    assert body["versions"] == [stack["v1"]] * 200 and body["predictions"] == [1.0] * 200
    assert set(body["variants"]) == {"control", "b"}
    mirrored = sum(1 for v in body["variants"] if v == "b")
    serve.wait_for(
        lambda: (
            sum(PredictionMinute.all_teams.filter(version_id=stack["v2"]).values_list("rows", flat=True)) >= mirrored
        ),
        what="the challenger's mirrored predictions in serve's stats",
    )
    serve.wait_for(lambda: Exposure.all_teams.filter(test=test).count() >= 201, what="exposures flushed")
