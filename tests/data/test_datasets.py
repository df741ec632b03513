"""Data sets as run inputs: recorded from the API (people and steps), from MLflow's log-inputs,
and read back as lineage (datasets_for_runs) and as "the input changed" between two runs."""

from __future__ import annotations

import json

import pytest

from cellar_server.data import selectors
from cellar_server.data.models import Dataset, DatasetInput
from cellar_server.tracking.models import Experiment, Run
from tests.data.test_secrets import bearer
from tests.factories import mint_token

pytestmark = pytest.mark.django_db
BASE = "/api/v1/teams/acme/"
SHA_A, SHA_B = "a" * 64, "b" * 64


def make_run(team, uuid: str) -> Run:
    exp, _ = Experiment.all_teams.get_or_create(
        team=team, number=1, defaults={"name": "e", "creation_time": 0, "last_update_time": 0}
    )
    return Run.all_teams.create(team=team, run_uuid=uuid, experiment=exp, start_time=0)


def record(client, run_id, digest, *, name="churn.csv", context="training"):
    body = {
        "run_id": run_id,
        "context": context,
        "dataset": {"name": name, "uri": "s3://lake/churn.csv", "digest": f"sha256:{digest}", "kind": "s3", "size": 10},
    }
    return client.post(BASE + "dataset-inputs/", body, format="json")


def test_the_same_content_is_one_version_read_by_many_runs(api_as, members, team):
    client = api_as(members["editor"])
    r1, r2, r3 = (make_run(team, c * 32) for c in "123")
    assert record(client, r1.run_uuid, SHA_A).status_code == 201
    assert record(client, r2.run_uuid, SHA_A).status_code == 201
    assert record(client, r3.run_uuid, SHA_B).status_code == 201
    assert Dataset.all_teams.count() == 2 and DatasetInput.all_teams.count() == 3
    lineage = selectors.datasets_for_runs(team=team, run_ids=[r1.run_uuid, r3.run_uuid, "nope"])
    assert set(lineage) == {r1.run_uuid, r3.run_uuid}
    (row,) = lineage[r1.run_uuid]
    assert row["digest"] == f"sha256:{SHA_A}" and row["context"] == "training" and row["uri"] == "s3://lake/churn.csv"
    assert selectors.inputs_changed(team=team, run_a=r1.run_uuid, run_b=r2.run_uuid) == []
    assert selectors.inputs_changed(team=team, run_a=r1.run_uuid, run_b=r3.run_uuid) == [
        {"name": "churn.csv", "a": f"sha256:{SHA_A}", "b": f"sha256:{SHA_B}"}
    ]
    listed = client.get(BASE + "datasets/?name=churn.csv").json()
    assert listed["count"] == 2 and {d["run_count"] for d in listed["results"]} == {1, 2}
    detail = client.get(BASE + f"datasets/{listed['results'][-1]['dataset_id']}/").json()
    assert {r["run_id"] for r in detail["runs"]} <= {r1.run_uuid, r2.run_uuid, r3.run_uuid}


def test_viewers_read_but_do_not_record(api_as, members, team):
    run = make_run(team, "9" * 32)
    assert record(api_as(members["viewer"]), run.run_uuid, SHA_A).status_code == 403
    assert api_as(members["viewer"]).get(BASE + "datasets/").status_code == 200


def test_another_team_neither_sees_nor_records(api_as, outsider, other_team, team, members):
    run = make_run(team, "8" * 32)
    record(api_as(members["editor"]), run.run_uuid, SHA_A)
    assert api_as(outsider).get(BASE + "datasets/").status_code == 404
    assert record(api_as(outsider), run.run_uuid, SHA_A).status_code == 404
    assert selectors.datasets_for_runs(team=other_team, run_ids=[run.run_uuid]) == {}


@pytest.mark.parametrize(
    "dataset,code",
    [
        ({"name": "x", "uri": "u", "digest": "md5:abc"}, "invalid_dataset"),
        ({"name": "", "uri": "u", "digest": f"sha256:{SHA_A}"}, "invalid_dataset"),
        ({"name": "x", "uri": "u", "digest": f"sha256:{SHA_A}", "size": -1}, "invalid_dataset"),
        ("nope", "invalid_dataset"),
    ],
    ids=["digest", "name", "size", "not-an-object"],
)
def test_bad_data_sets_are_clear_errors_and_write_nothing(api_as, members, dataset, code):
    response = api_as(members["editor"]).post(BASE + "dataset-inputs/", {"dataset": dataset}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert Dataset.all_teams.count() == 0


def test_a_step_records_to_its_own_run_only(step_tokens, team):
    tracking_run = step_tokens["_run"].tracking_run
    other = make_run(team, "7" * 32)
    token = step_tokens["undeclared"]  # recording needs no declaration
    assert record(bearer(token), tracking_run, SHA_A).status_code == 201
    assert record(bearer(token), other.run_uuid, SHA_A).status_code == 404
    assert set(selectors.datasets_for_runs(team=team, run_ids=[tracking_run, other.run_uuid])) == {tracking_run}


def test_mlflow_log_inputs_land_in_the_same_tables(client, team, members):
    run = make_run(team, "6" * 32)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {mint_token(team, members['editor'])[1]}"}
    body = {
        "run_id": run.run_uuid,
        "datasets": [
            {
                "dataset": {
                    "name": "iris",
                    "digest": "d4e5f6",
                    "source_type": "local",
                    "source": json.dumps({"uri": "/data/iris.csv"}),
                    "schema": json.dumps({"mlflow_colspec": [{"name": "sepal", "type": "double"}]}),
                    "profile": json.dumps({"num_rows": 150}),
                },
                "tags": [{"key": "mlflow.data.context", "value": "training"}],
            }
        ],
    }
    response = client.post(
        "/t/acme/mlflow/api/2.0/mlflow/runs/log-inputs", json.dumps(body), content_type="application/json", **headers
    )
    assert response.status_code == 200, response.content
    (row,) = selectors.datasets_for_runs(team=team, run_ids=[run.run_uuid])[run.run_uuid]
    assert row["name"] == "iris" and row["uri"] == "/data/iris.csv" and row["digest"] == "mlflow:d4e5f6"
    assert row["context"] == "training" and row["source"] == "mlflow" and row["profile"]["num_rows"] == 150
    bad = client.post(
        "/t/acme/mlflow/api/2.0/mlflow/runs/log-inputs",
        json.dumps({"run_id": run.run_uuid, "datasets": ["x"]}),
        content_type="application/json",
        **headers,
    )
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
