"""The serve process for real: `cellar-worker serve` in a subprocess, the web process (live
server) answering its route polls, model files in a file artifact store, PostgreSQL behind."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from cellar_server.serving import services
from cellar_server.serving.credentials import serve_token
from cellar_server.serving.models import PredictionMinute, PredictionSample, VersionHealth
from cellar_server.teams.actors import SYSTEM
from tests.serving.conftest import constant_model, mint_key, start_serve, training_data

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

ROW = {"age": 41.0, "income": 52.5, "tenure": 3.0}


@pytest.fixture
def serve(live_server, store_dir, tmp_path):
    process = start_serve(api_url=live_server.url, store_dir=store_dir, home=tmp_path, token=serve_token())
    yield process
    process.stop()


@pytest.fixture
def frame():
    return training_data()[0]


def _routed(serve, deployment: str, versions: list[str], key: str):
    """Wait until serve routes `deployment` to `versions` and knows `key` (minted after the deployment)."""
    return serve.wait_for(
        lambda: (
            sorted(serve.ready()["deployments"].get(f"acme/{deployment}", [])) == sorted(versions)
            and serve.predict("acme", deployment, {}, key).status_code != 403
        ),
        what=f"{deployment} routed to {versions}",
    )


def test_predicts_records_and_columns_with_the_version_that_served(serve, team, register, deploy, frame):
    from sklearn.linear_model import LogisticRegression

    frame_, labels = training_data()
    model = LogisticRegression(max_iter=500).fit(frame_, labels)
    version = register(team, "churn", model, frame_)
    deployment = deploy(team, "churn-api", {version: 1})
    key = mint_key(team, deployment)
    _routed(serve, "churn-api", [str(version.pk)], key)

    rows = frame_.head(100).to_dict(orient="records")
    response = serve.predict("acme", "churn-api", {"dataframe_records": rows}, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == model.predict(frame_.head(100)).tolist()
    assert body["versions"] == [str(version.pk)] * 100

    one = serve.predict("acme", "churn-api", {"inputs": {k: [v] for k, v in ROW.items()}}, key).json()
    import pandas as pd

    assert one["predictions"] == model.predict(pd.DataFrame([ROW])).tolist()
    split = {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}
    assert serve.predict("acme", "churn-api", split, key).json()["predictions"] == one["predictions"]
    assert serve.predict("acme", "churn-api", [ROW], key).json()["predictions"] == one["predictions"]


def test_bad_requests_get_clear_errors_and_serve_keeps_going(serve, team, register, deploy, frame):
    version = register(team, "churn", constant_model(1.0, frame), frame)
    deployment = deploy(team, "churn-api", {version: 1})
    key = mint_key(team, deployment)
    _routed(serve, "churn-api", [str(version.pk)], key)

    missing = serve.predict("acme", "churn-api", [{"age": 1.0, "income": "lots"}], key)
    assert missing.status_code == 422
    error = missing.json()["error"]
    assert error["code"] == "signature_mismatch" and set(error["fields"]) == {"income", "tenure"}
    extra = serve.predict("acme", "churn-api", [{**ROW, "zip": "12345"}], key).json()["error"]
    assert extra["fields"] == ["zip"]

    assert serve.predict("acme", "nope", [ROW], key).json()["error"]["code"] == "deployment_not_found"
    assert serve.predict("rival", "churn-api", [ROW], key).status_code == 404
    assert serve.predict("acme", "churn-api", [ROW], None).status_code == 401
    assert serve.predict("acme", "churn-api", [ROW], "cdk_wrong_key").json()["error"]["code"] == "invalid_key"
    malformed = serve.session.post(
        f"{serve.url}/serve/acme/churn-api/predict", data=b"{not json", headers={"Authorization": f"Bearer {key}"}
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    assert serve.session.get(f"{serve.url}/serve/acme/churn-api/predict").status_code == 405

    # A revoked key stops working from serve's next poll.
    stored = deployment.keys.get()
    services.deployment_key_revoke(team=team, actor=SYSTEM, key=stored)
    serve.wait_for(lambda: serve.predict("acme", "churn-api", [ROW], key).status_code == 403, what="revocation")
    assert serve.proc.poll() is None


def test_routes_by_weight(serve, team, register, deploy, frame):
    a = register(team, "churn", constant_model(1.0, frame), frame)
    b = register(team, "churn", constant_model(2.0, frame), frame)
    deployment = deploy(team, "churn-api", {a: 0.8, b: 0.2})
    key = mint_key(team, deployment)
    _routed(serve, "churn-api", [str(a.pk), str(b.pk)], key)

    counts: Counter = Counter()
    for _ in range(1000):
        body = serve.predict("acme", "churn-api", [ROW], key).json()
        counts[(body["versions"][0], body["predictions"][0])] += 1
    assert set(counts) == {(str(a.pk), 1.0), (str(b.pk), 2.0)}  # each version answered with its own model
    # 1,000 draws at p = 0.2: mean 200, sd ~12.6; ±5 sd.
    assert 137 <= counts[(str(b.pk), 2.0)] <= 263, counts


def test_hot_swap_under_concurrent_load_fails_no_request(serve, team, register, deploy, frame):
    old = register(team, "churn", constant_model(1.0, frame), frame)
    new = register(team, "churn", constant_model(2.0, frame), frame)
    deployment = deploy(team, "churn-api", {old: 1})
    key = mint_key(team, deployment)
    _routed(serve, "churn-api", [str(old.pk)], key)

    import requests

    failures: list[str] = []
    seen: list[list[str]] = [[] for _ in range(6)]
    stop = threading.Event()

    def load(index: int) -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.post(
                    f"{serve.url}/serve/acme/churn-api/predict",
                    json=[ROW, ROW],
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
            except requests.RequestException as exc:
                failures.append(repr(exc))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
                continue
            seen[index].append(response.json()["versions"][0])

    threads = [threading.Thread(target=load, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        services.deployment_update(
            team=team, actor=SYSTEM, deployment=deployment, routes=[{"version_id": str(new.pk), "weight": 1}]
        )
        serve.wait_for(lambda: all(s and s[-1] == str(new.pk) for s in seen), what="every client on the new version")
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    total = sum(len(s) for s in seen)
    assert total > 100
    for versions in seen:  # each client saw old, then new, never back
        switch = versions.index(str(new.pk))
        assert set(versions[:switch]) == {str(old.pk)} and set(versions[switch:]) == {str(new.pk)}


def test_a_version_that_fails_to_load_is_unhealthy_and_traffic_stays_on_the_last_good(
    serve, team, register, deploy, frame
):
    good = register(team, "churn", constant_model(1.0, frame), frame)
    broken = register(team, "churn", constant_model(2.0, frame), frame, corrupt=True)
    deployment = deploy(team, "churn-api", {good: 1})
    key = mint_key(team, deployment)
    _routed(serve, "churn-api", [str(good.pk)], key)

    services.deployment_update(
        team=team, actor=SYSTEM, deployment=deployment, routes=[{"version_id": str(broken.pk), "weight": 1}]
    )
    health = serve.wait_for(
        lambda: VersionHealth.all_teams.filter(version_id=str(broken.pk), state="failed").first(),
        what="the broken version reported failed",
    )
    assert "pickle" in health.error.lower() or "unpickl" in health.error.lower(), health.error
    for _ in range(20):
        response = serve.predict("acme", "churn-api", [ROW], key)
        assert response.status_code == 200 and response.json()["versions"] == [str(good.pk)]

    # A deployment whose only version never loaded answers 503 with the error, not 404.
    lonely = deploy(team, "lonely", {broken: 1})
    lonely_key = mint_key(team, lonely)
    (response,) = serve.wait_for(
        lambda: (r := serve.predict("acme", "lonely", [ROW], lonely_key)).status_code == 503 and (r,),
        what="lonely unavailable",
    )
    error = response.json()["error"]
    assert error["code"] == "deployment_unavailable" and "UnpicklingError" in error["message"]
    assert serve.proc.poll() is None


def test_predictions_are_logged_for_traffic_and_drift(live_server, store_dir, tmp_path, team, register, deploy, frame):
    serve = start_serve(api_url=live_server.url, store_dir=store_dir, home=tmp_path, token=serve_token())
    try:
        version = register(team, "churn", constant_model(1.0, frame), frame)
        deployment = deploy(team, "churn-api", {version: 1})
        services.deployment_update(team=team, actor=SYSTEM, deployment=deployment, sample_rate=1.0)
        key = mint_key(team, deployment)
        _routed(serve, "churn-api", [str(version.pk)], key)
        shifted = [{"age": 90.0, "income": 5.0, "tenure": 19.0}] * 10
        for _ in range(30):
            assert serve.predict("acme", "churn-api", shifted, key).status_code == 200
        serve.predict("acme", "churn-api", [{"age": "x"}], key)  # a 422 counts as an error
        serve.wait_for(
            lambda: (
                sum(PredictionMinute.all_teams.values_list("requests", flat=True)) == 31
                and PredictionSample.all_teams.count() == 300
            ),
            what="stats and samples at the control plane",
        )
    finally:
        serve.stop()
    assert sum(PredictionMinute.all_teams.values_list("errors", flat=True)) == 1
    assert sum(PredictionMinute.all_teams.values_list("rows", flat=True)) == 300
    from cellar_server.core.scoping import team_scope
    from cellar_server.serving.selectors import deployment_drift

    with team_scope(team.id):
        (drift,) = deployment_drift(deployment=deployment)
    assert set(drift["warnings"]) == {"age", "income", "tenure"}


def test_a_load_that_failed_on_a_missing_file_is_retried(
    live_server, store_dir, tmp_path, team, register, deploy, frame
):
    from cellar.artifacts import blob_key

    version = register(team, "churn", constant_model(3.0, frame), frame)
    blob = store_dir / blob_key("acme", version.files["model.pkl"])
    hidden = blob.with_name("hidden")
    blob.rename(hidden)  # the store "loses" the model file for a while
    serve = start_serve(
        api_url=live_server.url,
        store_dir=store_dir,
        home=tmp_path,
        token=serve_token(),
        extra_env={"CELLAR_SERVE_RETRY_SECONDS": "1"},
    )
    try:
        deployment = deploy(team, "churn-api", {version: 1})
        key = mint_key(team, deployment)
        serve.wait_for(
            lambda: VersionHealth.all_teams.filter(version_id=str(version.pk), state="failed").exists(),
            what="the version reported failed",
        )
        assert serve.predict("acme", "churn-api", [ROW], key).status_code == 503
        hidden.rename(blob)
        serve.wait_for(
            lambda: serve.predict("acme", "churn-api", [ROW], key).status_code == 200, what="the retried load"
        )
        assert serve.predict("acme", "churn-api", [ROW], key).json()["predictions"] == [3.0]
        serve.wait_for(
            lambda: VersionHealth.all_teams.filter(version_id=str(version.pk), state="ready").exists(),
            what="the version reported ready",
        )
    finally:
        serve.stop()


class _ExitOnLoad:
    """Unpickling this calls os._exit(3): the interpreter ends, no exception to catch."""

    def __reduce__(self):
        import os

        return (os._exit, (3,))


def test_a_model_that_kills_its_interpreter_on_load_does_not_kill_serve(serve, team, register, deploy, frame):
    import pickle

    good = register(team, "churn", constant_model(1.0, frame), frame)
    deadly = register(team, "churn", constant_model(2.0, frame), frame, pickle_bytes=pickle.dumps(_ExitOnLoad()))
    deployment = deploy(team, "churn-api", {good: 1})
    key = mint_key(team, deployment)
    _routed(serve, "churn-api", [str(good.pk)], key)
    services.deployment_update(
        team=team, actor=SYSTEM, deployment=deployment, routes=[{"version_id": str(deadly.pk), "weight": 1}]
    )
    health = serve.wait_for(
        lambda: VersionHealth.all_teams.filter(version_id=str(deadly.pk), state="failed").first(),
        what="the deadly version reported failed",
    )
    assert "code 3" in health.error, health.error
    assert serve.proc.poll() is None
    assert serve.predict("acme", "churn-api", [ROW], key).json()["versions"] == [str(good.pk)]
