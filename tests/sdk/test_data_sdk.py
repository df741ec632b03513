"""cellar.secret / cellar.connect / cellar.dataset from a notebook, against a live server, the real
PostgreSQL and a local S3 server (moto in server mode)."""

from __future__ import annotations

import contextlib
import hashlib
import io

import boto3
import pytest
from django.db import connection as django_db
from moto.server import ThreadedMotoServer

import cellar
from cellar.data import redact
from cellar.data.remote import DataAccessError
from cellar_server.data import selectors, services
from cellar_server.data.models import Dataset
from cellar_server.teams.actors import Actor
from tests.factories import mint_token

pytestmark = pytest.mark.django_db(transaction=True)
VALUE = "s3cr3t-Value-for-the-sdk-tests"
CSV = b"id,churned\n1,0\n2,1\n3,0\n"


@pytest.fixture
def admin(members):
    return Actor(user=members["admin"])


@pytest.fixture
def warehouse(team, admin, settings):
    """A `warehouse` SQL connection to this test database, its password in a secret, and a table."""
    services.secret_create(actor=admin, team=team, name="dwh-password", value=VALUE)
    db = settings.DATABASES["default"]
    url = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    services.connection_create(
        actor=admin, team=team, name="warehouse", kind="sql", config={"url": url, "password_secret": "dwh-password"}
    )
    with django_db.cursor() as cursor:
        cursor.execute("CREATE TABLE h9_churn (id int primary key, churned int)")
        cursor.execute("INSERT INTO h9_churn VALUES (1, 0), (2, 1)")
    yield url
    with django_db.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS h9_churn")


@pytest.fixture
def lake(team, admin, monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="AKIAH9", aws_secret_access_key=VALUE, region_name="us-east-1"
    )
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="raw/train.csv", Body=CSV)
    services.secret_create(actor=admin, team=team, name="lake-key-id", value="AKIAH9")
    services.secret_create(actor=admin, team=team, name="lake-secret-key", value=VALUE)
    services.connection_create(
        actor=admin,
        team=team,
        name="lake",
        kind="s3",
        config={
            "bucket": "lake",
            "prefix": "raw/",
            "endpoint_url": endpoint,
            "region": "us-east-1",
            "access_key_id_secret": "lake-key-id",
            "secret_access_key_secret": "lake-secret-key",
        },
    )
    yield s3
    server.stop()


def api_test(live_server, team, user, name):
    import requests

    conn = selectors.connection_for_name(team=team, name=name)
    token = mint_token(team, user)[1]
    response = requests.post(
        f"{live_server.url}/api/v1/teams/{team.slug}/connections/{conn.pk}/test/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_sql_connection_and_data_set_against_postgresql(tracking, live_server, team, members, warehouse):
    tested = api_test(live_server, team, members["editor"], "warehouse")
    assert tested["ok"] is True, tested
    engine = cellar.connect("warehouse")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM h9_churn").scalar() == 2
    engine.dispose()
    with cellar.start_run(experiment="churn") as run:
        df = cellar.dataset("warehouse", query="SELECT * FROM h9_churn ORDER BY id", context="training")
        again = cellar.dataset("warehouse", query="SELECT * FROM h9_churn ORDER BY id", context="training")
    assert (
        list(df["churned"]) == [0, 1]
        and df.attrs["cellar_dataset"]["digest"] == again.attrs["cellar_dataset"]["digest"]
    )
    expected = hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()
    assert df.attrs["cellar_dataset"]["digest"] == f"sha256:{expected}"
    with django_db.cursor() as cursor:
        cursor.execute("INSERT INTO h9_churn VALUES (3, 1)")
    with cellar.start_run(experiment="churn") as later:
        cellar.dataset("warehouse", query="SELECT * FROM h9_churn ORDER BY id", context="training")
    lineage = selectors.datasets_for_runs(team=team, run_ids=[run.id, later.id])
    assert len(lineage[run.id]) == 1 and lineage[run.id][0]["profile"]["rows"] == 2
    assert lineage[later.id][0]["profile"]["rows"] == 3
    (changed,) = selectors.inputs_changed(team=team, run_a=run.id, run_b=later.id)
    assert changed["a"] != changed["b"]


def test_a_failing_sql_connection_reports_the_driver_error_without_the_secret(
    live_server, team, members, warehouse, admin
):
    conn = selectors.connection_for_name(team=team, name="warehouse")
    services.connection_update(
        actor=admin, connection=conn, config={"url": warehouse + "_missing", "password_secret": "dwh-password"}
    )
    result = api_test(live_server, team, members["editor"], "warehouse")
    assert result["ok"] is False
    assert "does not exist" in result["message"] and VALUE not in result["message"]


def test_s3_connection_data_set_and_snapshot(tracking, live_server, team, members, lake):
    assert api_test(live_server, team, members["editor"], "lake")["ok"] is True
    client = cellar.connect("lake")
    assert client.cellar_bucket == "lake"
    assert [o["Key"] for o in client.list_objects_v2(Bucket="lake")["Contents"]] == ["raw/train.csv"]
    with cellar.start_run(experiment="churn"):
        df = cellar.dataset("s3://lake/raw/train.csv", connection="lake", snapshot=True)
    sha = hashlib.sha256(CSV).hexdigest()
    assert list(df["id"]) == [1, 2, 3] and df.attrs["cellar_dataset"]["digest"] == f"sha256:{sha}"
    assert Dataset.all_teams.get(uri="s3://lake/raw/train.csv").snapshot == sha
    lake.delete_object(Bucket="lake", Key="raw/train.csv")  # the source is gone; the snapshot is not
    with cellar.start_run(experiment="churn"):
        rerun = cellar.dataset("s3://lake/raw/train.csv", digest=f"sha256:{sha}")
    assert rerun.equals(df)


def test_a_failing_s3_connection_names_the_problem_without_the_secret(live_server, team, members, lake, admin):
    conn = selectors.connection_for_name(team=team, name="lake")
    services.connection_update(actor=admin, connection=conn, config={**conn.config, "bucket": "no-such-bucket"})
    result = api_test(live_server, team, members["editor"], "lake")
    assert result["ok"] is False and "NoSuchBucket" in result["message"] and VALUE not in result["message"]


def test_secrets_in_a_notebook_need_editor(tracking, live_server, team, members, monkeypatch, admin):
    services.secret_create(actor=admin, team=team, name="api-key", value=VALUE)
    assert cellar.secret("api-key") == VALUE
    from cellar.tracking import session

    session.logout()
    monkeypatch.setenv("CELLAR_TOKEN", mint_token(team, members["viewer"])[1])
    with pytest.raises(DataAccessError, match="data:write"):
        cellar.secret("api-key")


def test_known_secret_values_are_masked_in_a_steps_output():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        redact.remember(VALUE, install=True)
        print(f"connecting with {VALUE} now")
    assert out.getvalue() == "connecting with *** now\n"


def test_a_secret_in_a_steps_error_message_is_masked():
    from cellar.pipelines.execute.failure import failure_from
    from cellar.pipelines.spec import Step

    redact.remember(VALUE, install=False)
    try:
        raise ConnectionError(f"could not log in with password {VALUE!r}")
    except ConnectionError as exc:
        failed = failure_from(Step(name="load", code="x = 1"), exc, "run", None)
    assert VALUE not in failed.message and failed.message == "could not log in with password '***'"
    assert VALUE not in failed.summary()
