"""The MLflow REST surface over HTTP: error codes, limits, idempotency, tenancy, artifacts."""

from __future__ import annotations

import pytest

from cellar_server.tracking.models import (
    ArtifactFile,
    Experiment,
    LatestMetric,
    Metric,
    MetricBucket,
    Param,
    Run,
    RunTag,
)
from tests.conftest import ROLES
from tests.factories import mint_token
from tests.tracking.conftest import BASE, Mlflow

pytestmark = pytest.mark.django_db


def _error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


def test_set_experiment_flow_codes(ml):
    assert _error(ml.get("experiments/get-by-name", experiment_name="nope")) == (404, "RESOURCE_DOES_NOT_EXIST")
    created = ml.post("experiments/create", {"name": "churn", "tags": [{"key": "k", "value": "v"}]})
    assert created.status_code == 200 and created.json() == {"experiment_id": "1"}
    again = ml.post("experiments/create", {"name": "churn"})
    assert _error(again) == (400, "RESOURCE_ALREADY_EXISTS")
    got = ml.get("experiments/get", experiment_id="1").json()["experiment"]
    assert got["name"] == "churn" and got["tags"] == [{"key": "k", "value": "v"}]
    assert got["artifact_location"] == "mlflow-artifacts:/1"
    assert _error(ml.get("experiments/get", experiment_id="99")) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert _error(ml.get("experiments/get", experiment_id="abc")) == (400, "INVALID_PARAMETER_VALUE")


def test_experiment_lifecycle_search_and_rename(ml):
    for name in ["a", "b", "c"]:
        ml.post("experiments/create", {"name": name})
    assert ml.post("experiments/delete", {"experiment_id": "2"}).status_code == 200
    active = ml.post("experiments/search", {"max_results": 10}).json()["experiments"]
    assert sorted(e["name"] for e in active) == ["Default", "a", "c"]
    deleted = ml.post("experiments/search", {"view_type": "DELETED_ONLY"}).json()["experiments"]
    assert [e["name"] for e in deleted] == ["b"]
    page = ml.post("experiments/search", {"max_results": 2, "order_by": ["name ASC"]}).json()
    assert [e["name"] for e in page["experiments"]] == ["Default", "a"] and page["next_page_token"]
    rest = ml.post(
        "experiments/search", {"max_results": 2, "order_by": ["name ASC"], "page_token": page["next_page_token"]}
    ).json()
    assert [e["name"] for e in rest["experiments"]] == ["c"] and "next_page_token" not in rest
    named = ml.post("experiments/search", {"filter": "name LIKE 'a%'"}).json()["experiments"]
    assert [e["name"] for e in named] == ["a"]
    ml.post("experiments/restore", {"experiment_id": "2"})
    ml.post("experiments/update", {"experiment_id": "2", "new_name": "bee"})
    assert ml.get("experiments/get", experiment_id="2").json()["experiment"]["name"] == "bee"
    assert _error(ml.post("experiments/delete", {"experiment_id": "0"})) == (400, "INVALID_PARAMETER_VALUE")


def test_log_batch_limits_write_nothing(ml):
    run_id = ml.run()
    too_many = [{"key": f"m{i}", "value": 1, "timestamp": 1, "step": 0} for i in range(1001)]
    response = ml.post("runs/log-batch", {"run_id": run_id, "metrics": too_many})
    assert _error(response) == (400, "INVALID_PARAMETER_VALUE") and "at most 1000 metrics" in response.json()["message"]
    params = [{"key": f"p{i}", "value": "x"} for i in range(101)]
    assert _error(ml.post("runs/log-batch", {"run_id": run_id, "params": params}))[1] == "INVALID_PARAMETER_VALUE"
    mixed = {"run_id": run_id, "metrics": too_many[:950], "tags": [{"key": f"t{i}", "value": "x"} for i in range(60)]}
    assert "total" in ml.post("runs/log-batch", mixed).json()["message"]
    huge = {
        "run_id": run_id,
        "params": [{"key": f"p{i}", "value": "x" * 6000} for i in range(100)],
        "tags": [{"key": f"t{i}", "value": "y" * 8000} for i in range(100)],
    }
    assert "1 MB" in ml.post("runs/log-batch", huge).json()["message"]
    # One bad metric among good ones: the whole batch is refused.
    half_bad = [{"key": "ok", "value": 1, "timestamp": 1}, {"key": "bad", "value": "abc", "timestamp": 1}]
    assert _error(ml.post("runs/log-batch", {"run_id": run_id, "metrics": half_bad}))[0] == 400
    run = Run.all_teams.get(run_uuid=run_id)
    assert not Metric.objects.filter(run=run).exists() and not Param.objects.filter(run=run).exists()
    assert RunTag.objects.filter(run=run).count() == 1  # only mlflow.runName from create


@pytest.mark.parametrize(
    "key,fragment",
    [
        ("../escape", "must not resolve"),
        ("/abs", "must not resolve"),
        ("bad$key", "may only contain"),
        ("x" * 251, "limit is 250"),
        ("", "required parameter 'key'"),
    ],
    ids=["dotdot", "absolute", "character", "long", "empty"],
)
def test_bad_keys(ml, key, fragment):
    run_id = ml.run()
    response = ml.post("runs/log-metric", {"run_id": run_id, "key": key, "value": 1, "timestamp": 1})
    assert _error(response) == (400, "INVALID_PARAMETER_VALUE")
    assert fragment in response.json()["message"]


def test_writes_are_idempotent_under_retry(ml):
    run_id = ml.run()
    batch = {
        "run_id": run_id,
        "metrics": [{"key": "loss", "value": v, "timestamp": 10 + i, "step": i} for i, v in enumerate([3, 2, 1])],
        "params": [{"key": "lr", "value": "0.1"}],
        "tags": [{"key": "t", "value": "1"}],
    }
    for _ in range(3):  # the client retries 5xx up to 7 times
        assert ml.post("runs/log-batch", batch).status_code == 200
    run = Run.all_teams.get(run_uuid=run_id)
    assert Metric.objects.filter(run=run).count() == 3
    assert Param.objects.filter(run=run).count() == 1
    latest = LatestMetric.objects.get(run=run, key="loss")
    assert (latest.step, latest.value) == (2, 1.0)


def test_nan_and_infinity_round_trip(ml):
    run_id = ml.run()
    for i, value in enumerate(["NaN", "Infinity", "-Infinity", 1.5]):
        ml.post("runs/log-metric", {"run_id": run_id, "key": "m", "value": value, "timestamp": i, "step": i})
    history = ml.get("metrics/get-history", run_id=run_id, metric_key="m").json()["metrics"]
    assert [m["value"] for m in history] == ["NaN", "Infinity", "-Infinity", 1.5]
    latest = ml.get("runs/get", run_id=run_id).json()["run"]["data"]["metrics"]
    assert latest == [{"key": "m", "value": 1.5, "timestamp": 3, "step": 3}]


def test_latest_metric_is_max_step_then_timestamp(ml):
    run_id = ml.run()
    points = [(5, 100, 0.5), (9, 50, 0.9), (9, 40, 0.1), (2, 200, 0.2)]
    for step, ts, value in points:  # out of order, as concurrent loggers deliver them
        ml.post("runs/log-metric", {"run_id": run_id, "key": "acc", "value": value, "timestamp": ts, "step": step})
    [latest] = ml.get("runs/get", run_id=run_id).json()["run"]["data"]["metrics"]
    assert (latest["step"], latest["timestamp"], latest["value"]) == (9, 50, 0.9)


def test_history_pagination(ml):
    run_id = ml.run()
    metrics = [{"key": "x", "value": i, "timestamp": i, "step": i} for i in range(25)]
    ml.post("runs/log-batch", {"run_id": run_id, "metrics": metrics})
    first = ml.get("metrics/get-history", run_id=run_id, metric_key="x", max_results=10).json()
    second = ml.get(
        "metrics/get-history", run_id=run_id, metric_key="x", max_results=10, page_token=first["next_page_token"]
    ).json()
    assert [m["step"] for m in first["metrics"]] == list(range(10))
    assert [m["step"] for m in second["metrics"]] == list(range(10, 20))
    assert _error(ml.get("metrics/get-history", run_id=run_id, metric_key="x", page_token="garbage"))[0] == 400


def test_bulk_interval(ml):
    a, b = ml.run(), ml.run()
    for run_id in (a, b):
        ml.post(
            "runs/log-batch",
            {"run_id": run_id, "metrics": [{"key": "x", "value": i, "timestamp": i, "step": i} for i in range(10)]},
        )
    body = ml.client.get(
        BASE + "metrics/get-history-bulk-interval",
        {"run_ids": [a, b], "metric_key": "x", "start_step": 2, "end_step": 4},
        **ml.headers,
    ).json()
    assert sorted((m["run_id"], m["step"]) for m in body["metrics"]) == sorted(
        [(r, s) for r in (a, b) for s in (2, 3, 4)]
    )


def test_unknown_ids_and_endpoints(ml):
    assert _error(ml.get("runs/get", run_id="0" * 32)) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert _error(ml.post("runs/log-metric", {"run_id": "nope", "key": "k", "value": 1, "timestamp": 1}))[0] == 404
    assert _error(ml.get("no/such/endpoint")) == (404, "ENDPOINT_NOT_FOUND")
    assert _error(ml.post("runs/log-batch", "{not json"))[1] == "BAD_REQUEST"


def test_deleted_run_refuses_logging(ml):
    run_id = ml.run()
    ml.post("runs/delete", {"run_id": run_id})
    response = ml.post("runs/log-metric", {"run_id": run_id, "key": "k", "value": 1, "timestamp": 1})
    assert _error(response) == (400, "INVALID_PARAMETER_VALUE") and "active" in response.json()["message"]
    found = ml.post("runs/search", {"experiment_ids": ["0"], "run_view_type": "DELETED_ONLY"}).json()["runs"]
    assert [r["info"]["run_id"] for r in found] == [run_id]


def test_run_update_and_tags(ml):
    run_id = ml.run()
    info = ml.post(
        "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 5000, "run_name": "renamed"}
    ).json()["run_info"]
    assert (info["status"], info["end_time"], info["run_name"]) == ("FINISHED", 5000, "renamed")
    assert _error(ml.post("runs/update", {"run_id": run_id, "status": "DONE"}))[0] == 400
    ml.post("runs/set-tag", {"run_id": run_id, "key": "a", "value": "1"})
    ml.post("runs/set-tag", {"run_id": run_id, "key": "a", "value": "2"})
    tags = {t["key"]: t["value"] for t in ml.get("runs/get", run_id=run_id).json()["run"]["data"]["tags"]}
    assert tags["a"] == "2" and tags["mlflow.runName"] == "renamed"
    assert ml.post("runs/delete-tag", {"run_id": run_id, "key": "a"}).status_code == 200
    assert _error(ml.post("runs/delete-tag", {"run_id": run_id, "key": "a"}))[0] == 404


@pytest.mark.parametrize("role", ROLES)
def test_roles_reads_and_writes(client, team, members, role):
    ml = Mlflow(client, mint_token(team, members[role])[1])
    assert ml.post("experiments/search", {}).status_code == 200
    response = ml.post("experiments/create", {"name": f"by-{role}"})
    if role == "viewer":
        assert _error(response) == (403, "PERMISSION_DENIED")
        assert not Experiment.all_teams.filter(name="by-viewer").exists()
    else:
        assert response.status_code == 200


def test_read_only_token_cannot_write(client, team, members):
    ml = Mlflow(client, mint_token(team, members["owner"], scopes=["experiments:read"])[1])
    assert ml.post("experiments/search", {}).status_code == 200
    assert _error(ml.post("experiments/create", {"name": "x"})) == (403, "PERMISSION_DENIED")


def test_other_team_and_anonymous(client, team, members, other_team, outsider):
    outsider_ml = Mlflow(client, mint_token(other_team, outsider)[1])
    assert _error(outsider_ml.post("experiments/search", {})) == (404, "RESOURCE_DOES_NOT_EXIST")
    run_id = Mlflow(client, mint_token(team, members["editor"])[1]).run()
    own = Mlflow(client, mint_token(other_team, outsider)[1], base="/t/rival/mlflow/api/2.0/mlflow/")
    assert _error(own.get("runs/get", run_id=run_id)) == (404, "RESOURCE_DOES_NOT_EXIST")  # not its team's run
    anonymous = client.post(BASE + "experiments/search", "{}", content_type="application/json")
    assert _error(anonymous) == (401, "UNAUTHENTICATED")
    bad = client.post(
        BASE + "experiments/search",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer cellar_000000000000_x",
    )
    assert _error(bad) == (401, "UNAUTHENTICATED")


def test_basic_auth_with_token_as_password(client, team, members):
    import base64

    raw = mint_token(team, members["viewer"])[1]
    header = "Basic " + base64.b64encode(f"anyone:{raw}".encode()).decode()
    response = client.post(
        BASE + "experiments/search", "{}", content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 200


ART = "/t/acme/mlflow/api/2.0/mlflow-artifacts/artifacts/"


def test_artifact_proxy_put_get_list_delete(client, team, members, other_team, outsider, settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path}"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {mint_token(team, members['editor'])[1]}"}
    put = client.put(ART + "0/r1/artifacts/dir/a.txt", b"alpha", content_type="application/octet-stream", **headers)
    assert put.status_code == 200
    client.put(ART + "0/r1/artifacts/dir/sub/b.txt", b"beta", content_type="application/octet-stream", **headers)
    listing = client.get(ART, {"path": "0/r1/artifacts/dir"}, **headers).json()["files"]
    assert listing == [{"path": "a.txt", "is_dir": False, "file_size": 5}, {"path": "sub", "is_dir": True}]
    got = client.get(ART + "0/r1/artifacts/dir/a.txt", **headers)
    assert b"".join(got.streaming_content) == b"alpha"
    # Another team sees nothing of it, through its own URL or ours.
    foreign = {"HTTP_AUTHORIZATION": f"Bearer {mint_token(other_team, outsider)[1]}"}
    assert (
        client.get("/t/rival/mlflow/api/2.0/mlflow-artifacts/artifacts/0/r1/artifacts/dir/a.txt", **foreign).status_code
        == 404
    )
    assert client.get(ART + "0/r1/artifacts/dir/a.txt", **foreign).status_code == 404
    traversal = client.put(ART + "0/r1/../../etc/passwd", b"x", content_type="application/octet-stream", **headers)
    assert _error(traversal) == (400, "INVALID_PARAMETER_VALUE")
    assert client.delete(ART + "0/r1/artifacts/dir", **headers).status_code == 200
    assert not ArtifactFile.all_teams.filter(team=team).exists()
    assert not any(p.name.startswith("..") for p in tmp_path.rglob("*"))


def test_version_and_health(client):
    assert client.get("/t/acme/mlflow/version").content == b"3.17.2"
    assert client.get("/t/acme/mlflow/health").content == b"OK"


def test_experiment_search_uses_the_search_grammar(ml):
    ml.post("experiments/create", {"name": "vision", "tags": [{"key": "domain", "value": "cv"}]})
    ml.post("experiments/create", {"name": "nlp", "tags": [{"key": "domain", "value": "text"}]})

    def names(body):
        return sorted(e["name"] for e in ml.post("experiments/search", body).json()["experiments"])

    assert names({"filter": "tags.domain = 'cv'"}) == ["vision"]
    assert names({"filter": "experiment_id IN ('1', '2') AND name != 'vision'"}) == ["nlp"]
    assert names({"filter": "tags.domain IS NULL"}) == ["Default"]
    assert names({"filter": "creation_time > 0 and name ILIKE 'N%'"}) == ["nlp"]
    bad = ml.post("experiments/search", {"filter": "metrics.x > 1"})
    assert _error(bad) == (400, "INVALID_PARAMETER_VALUE") and "Unknown key type" in bad.json()["message"]


def test_a_batch_that_repeats_some_stored_points_adds_only_the_new_ones(ml):
    """A retry after a timeout can overlap what the first attempt stored (PostgreSQL then takes the
    ON CONFLICT path after a unique violation): every distinct point is stored exactly once."""
    run_id = ml.run()

    def batch(steps):
        points = [{"key": "loss", "value": s / 10, "timestamp": 5, "step": s} for s in steps]
        return {"run_id": run_id, "metrics": points}

    assert ml.post("runs/log-batch", batch(range(0, 600))).status_code == 200
    assert ml.post("runs/log-batch", batch(range(400, 1000))).status_code == 200
    run = Run.all_teams.get(run_uuid=run_id)
    steps = list(Metric.objects.filter(run=run, key="loss").order_by("step").values_list("step", flat=True))
    assert steps == list(range(1000))
    assert LatestMetric.objects.get(run=run, key="loss").step == 999


def test_a_param_rewrite_in_a_batch_leaves_its_points_unwritten(ml):
    """Points are written first in the batch's transaction; a refusal found later undoes them."""
    run_id = ml.run()
    assert ml.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}).status_code == 200
    batch = {
        "run_id": run_id,
        "metrics": [{"key": "loss", "value": 1.0, "timestamp": 1, "step": s} for s in range(10)],
        "params": [{"key": "lr", "value": "0.2"}],
        "tags": [{"key": "t", "value": "1"}],
    }
    response = ml.post("runs/log-batch", batch)
    assert _error(response) == (400, "INVALID_PARAMETER_VALUE")
    assert "Changing param values" in response.json()["message"]
    run = Run.all_teams.get(run_uuid=run_id)
    assert not Metric.objects.filter(run=run).exists() and not LatestMetric.objects.filter(run=run).exists()
    assert not RunTag.objects.filter(run=run, key="t").exists()
    assert not MetricBucket.objects.filter(run=run).exists()


def test_search_in_an_experiment_that_does_not_exist_is_an_empty_page(ml):
    """As MLflow's SQL store answers it (a client that searches before its experiment exists, the
    offline sync among them); it was a 500 when no experiment matched."""
    response = ml.post("runs/search", {"experiment_ids": ["4242"], "filter": "metrics.acc > 0.5"})
    assert response.status_code == 200, response.content
    assert response.json().get("runs", []) == []
