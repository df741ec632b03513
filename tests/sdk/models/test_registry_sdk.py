"""cellar.register_model / cellar.load_model against a live server (PostgreSQL, real HTTP)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import cellar
from cellar.registry import RegistryError, set_alias
from cellar_server.registry.models import AliasMove, ModelVersion
from tests.factories import mint_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


@pytest.fixture
def as_admin(tracking, team, members, monkeypatch):
    monkeypatch.setenv("CELLAR_TOKEN", mint_token(team, members["admin"])[1])


@pytest.fixture
def data() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})


def fit(data: pd.DataFrame, shift: float = 0.0) -> LogisticRegression:
    return LogisticRegression().fit(data, (data["a"] + data["b"] > shift).astype(int))


def test_register_then_load_by_alias(as_admin, team, data):
    model = fit(data)
    version = cellar.register_model(
        model, "churn", metrics={"auc": 0.8}, input_example=data.head(3), training_data=data, alias="champion"
    )
    assert (version.version, version.alias_moved, version.aliases) == (1, True, ["champion"])
    stored = ModelVersion.all_teams.get(team=team, model__name="churn", version=1)
    assert stored.flavor == "sklearn" and stored.metrics == {"auc": 0.8}
    assert stored.run_uuid == version.run_id and stored.run.name == "register churn"
    assert (
        stored.profile["features"]["a"]["count"] == 100 and len(stored.profile["features"]["a"]["bins"]["counts"]) == 10
    )
    assert '"name": "a"' in stored.signature["inputs"]
    loaded = cellar.load_model("churn@champion")
    assert loaded.predict(data).tolist() == model.predict(data).tolist()
    assert loaded.metadata["registry"] == {"id": str(stored.pk), "model": "churn", "version": 1}
    assert cellar.load_model("churn/1").flavor == "sklearn"


def test_gate_refuses_a_worse_model_but_registers_it(as_admin, data, capsys):
    cellar.register_model(fit(data), "churn", metrics={"auc": 0.85}, alias="champion", gate="auc")
    worse = cellar.register_model(fit(data, 1.0), "churn", metrics={"auc": 0.7}, alias="champion", gate="auc")
    assert worse.version == 2 and worse.alias_moved is False and worse.gate["passed"] is False
    assert "stays on v1" in worse.message and "stays on v1" in capsys.readouterr().out
    assert cellar.load_model("churn@champion").metadata["registry"]["version"] == 1
    better = cellar.register_model(fit(data), "churn", metrics={"auc": 0.9}, alias="champion", gate="auc")
    assert better.alias_moved is True and cellar.load_model("churn@champion").metadata["registry"]["version"] == 3
    set_alias("churn", "champion", 1, reason="rollback")
    assert AliasMove.all_teams.filter(alias="champion").order_by("-id").first().reason == "rollback"


def test_inside_an_active_run_the_version_links_to_it(as_admin, data):
    with cellar.start_run(experiment="churn", name="train") as run:
        cellar.log_metric("loss", 0.3)
        cellar.flush()
        version = cellar.register_model(fit(data), "churn", metrics={"auc": 0.8})
    assert version.run_id == run.run_id
    stored = ModelVersion.all_teams.get(model__name="churn", version=1)
    assert stored.metrics == {"auc": 0.8, "loss": 0.3}


def test_errors_name_the_problem(as_admin, tracking, team, members, monkeypatch, data):
    with pytest.raises(RegistryError) as err:
        cellar.load_model("nope@champion")
    assert err.value.code == "not_found"
    monkeypatch.setenv("CELLAR_TOKEN", mint_token(team, members["editor"])[1])
    from cellar.tracking import session as sessions

    sessions.logout()
    with pytest.raises(RegistryError) as err:
        cellar.register_model(fit(data), "churn", alias="champion")
    assert err.value.code == "missing_scope"
    assert not ModelVersion.all_teams.exists()


def test_the_mlflow_client_loads_a_version_cellar_registered(as_admin, team, members, live_server, data):
    from tests.tracking.mlflow_client import run_mlflow

    model = fit(data)
    cellar.register_model(model, "churn", input_example=data.head(2), alias="champion")
    rows = json.dumps(data.head(6).to_dict(orient="records"))
    out = run_mlflow(
        f"""
        import pandas as pd
        m = mlflow.pyfunc.load_model("models:/churn@champion")
        out["pred"] = m.predict(pd.DataFrame(json.loads({rows!r}))).tolist()
        """,
        url=f"{live_server.url}/t/acme/mlflow",
        token=mint_token(team, members["viewer"])[1],
    )
    assert out["pred"] == model.predict(data.head(6)).tolist()


def test_offline_runs_cannot_register(tracking_state, monkeypatch, data):
    monkeypatch.setenv("CELLAR_OFFLINE", "1")
    with pytest.raises(RegistryError) as err:
        cellar.register_model(fit(data), "churn")
    assert err.value.code == "offline"
    assert cellar.active_run() is None  # the run made for it was ended


def test_score_batch_from_a_notebook_records_what_it_scored(as_admin, team, data):
    from cellar_server.tracking.models import ArtifactFile, Run

    model = fit(data)
    cellar.register_model(model, "churn", input_example=data.head(2), alias="champion")
    frame = data.assign(customer=[f"c{i}" for i in range(len(data))])
    scored = cellar.score_batch(
        model="churn@champion", dataset=frame, output="out/scores.csv", keep=["customer"], batch_size=7
    )
    assert scored.rows == 100 and (scored.model, scored.version) == ("churn", 1)
    assert scored.predictions["prediction"].tolist() == model.predict(data).tolist()
    assert list(scored.predictions.columns) == ["customer", "prediction"]
    run = Run.all_teams.get(team=team, name="score churn")
    assert run.status == "FINISHED"
    tags = dict(run.tags.values_list("key", "value"))
    assert tags["cellar.scoring.model"] == "churn/1" and tags["cellar.scoring.rows"] == "100"
    stored = ArtifactFile.all_teams.get(team=team, path__endswith="/artifacts/out/scores.csv")
    assert stored.sha256 == scored.sha256
    with pytest.raises(ValueError, match="batch_size"):
        cellar.score_batch(model="churn@champion", dataset=frame, batch_size=0)
