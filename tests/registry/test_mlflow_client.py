"""The registry through the unmodified `mlflow` client (.venv-mlflow) against a live Cellar server."""

from __future__ import annotations

import textwrap

import pytest

from cellar_server.registry.models import AliasMove, ModelVersion, RegisteredModel
from tests.factories import mint_token
from tests.tracking.mlflow_client import run_mlflow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


@pytest.fixture
def env_for(live_server, team, members):
    def make(role: str) -> dict:
        _, raw = mint_token(team, members[role])
        return {"url": f"{live_server.url}/t/acme/mlflow", "token": raw}

    return make


TRAIN = """
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from mlflow.models import infer_signature
rng = np.random.default_rng(0)
X = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
y = (X["a"] + X["b"] > 0).astype(int)
"""


def test_register_alias_and_load_by_alias(env_for, team):
    out = run_mlflow(
        TRAIN
        + textwrap.dedent(
            """
        mlflow.set_experiment("churn")
        client = MlflowClient()
        for shift, fmt in ((0.0, "cloudpickle"), (0.5, "skops")):
            model = LogisticRegression().fit(X, (X["a"] + X["b"] > shift).astype(int))
            with mlflow.start_run() as run:
                mlflow.log_metric("auc", 0.8 + shift / 10)
                info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                                serialization_format=fmt)
            mv = mlflow.register_model(info.model_uri, "churn")
            out.setdefault("versions", []).append([mv.version, mv.status, mv.source, mv.run_id == run.info.run_id])
        client.set_registered_model_alias("churn", "champion", "1")
        client.set_registered_model_alias("churn", "challenger", "2")
        champion = client.get_model_version_by_alias("churn", "champion")
        out["champion"] = [champion.version, sorted(champion.aliases)]
        loaded = mlflow.pyfunc.load_model("models:/churn@champion")
        out["pred"] = loaded.predict(X.head(5)).tolist()
        out["expected"] = LogisticRegression().fit(X, y).predict(X.head(5)).tolist()
        rm = client.get_registered_model("churn")
        out["aliases"] = rm.aliases
        out["latest"] = [v.version for v in client.get_latest_versions("churn")]
        out["search"] = [m.name for m in client.search_registered_models(filter_string="name LIKE 'ch%'")]
        out["versions_search"] = sorted(v.version for v in client.search_model_versions("name = 'churn'"))
        out["uri"] = client.get_model_version_download_uri("churn", "1")
        client.delete_registered_model_alias("churn", "challenger")
        out["after_delete"] = client.get_registered_model("churn").aliases
        """
        ),
        **env_for("admin"),
    )
    assert [v[:2] for v in out["versions"]] == [["1", "READY"], ["2", "READY"]]
    assert all(v[3] for v in out["versions"]) and out["versions"][0][2].startswith("models:/m-")
    assert out["champion"] == ["1", ["champion"]]
    assert out["pred"] == out["expected"]
    assert out["aliases"] == {"champion": "1", "challenger": "2"}
    assert out["latest"] == ["2"]
    assert out["search"] == ["churn"] and out["versions_search"] == ["1", "2"]
    assert out["uri"].startswith("mlflow-artifacts:/")
    assert out["after_delete"] == {"champion": "1"}
    version = ModelVersion.all_teams.get(team=team, model__name="churn", version=1)
    assert version.flavor == "sklearn" and version.metrics == {"auc": 0.8} and "MLmodel" in version.files
    assert AliasMove.all_teams.filter(team=team, alias="champion", to_version=1).exists()


def test_errors_use_mlflow_codes(env_for, team):
    out = run_mlflow(
        """
        from mlflow.exceptions import MlflowException
        client = MlflowClient()
        client.create_registered_model("m")
        def code(fn):
            try:
                fn()
            except MlflowException as exc:
                return exc.error_code
            return "no error"
        out["dup"] = code(lambda: client.create_registered_model("m"))
        out["missing"] = code(lambda: client.get_registered_model("nope"))
        out["missing_version"] = code(lambda: client.get_model_version("m", "9"))
        out["bad_alias"] = code(lambda: client.set_registered_model_alias("m", "latest", "1"))
        out["no_alias"] = code(lambda: client.get_model_version_by_alias("m", "champion"))
        out["bad_source"] = code(lambda: client.create_model_version("m", "s3://bucket/x"))
        out["bad_filter"] = code(lambda: client.search_registered_models(filter_string="name >> 'x'"))
        client.rename_registered_model("m", "m2")
        client.update_registered_model("m2", description="described")
        client.set_registered_model_tag("m2", "team", "risk")
        rm = client.get_registered_model("m2")
        out["renamed"] = [rm.name, rm.description, rm.tags]
        client.delete_registered_model("m2")
        out["deleted"] = code(lambda: client.get_registered_model("m2"))
        """,
        **env_for("admin"),
    )
    assert out["dup"] == "RESOURCE_ALREADY_EXISTS"
    assert out["missing"] == out["missing_version"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["bad_alias"] == out["no_alias"] == out["bad_source"] == out["bad_filter"] == "INVALID_PARAMETER_VALUE"
    assert out["renamed"] == ["m2", "described", {"team": "risk"}]
    assert out["deleted"] == "RESOURCE_DOES_NOT_EXIST"
    assert not RegisteredModel.all_teams.filter(team=team).exists()


def test_an_editor_registers_but_cannot_move_aliases(env_for):
    out = run_mlflow(
        """
        from mlflow.exceptions import MlflowException
        client = MlflowClient()
        client.create_registered_model("m")
        try:
            client.set_registered_model_alias("m", "champion", "1")
            out["code"] = "no error"
        except MlflowException as exc:
            out["code"] = exc.error_code
        """,
        **env_for("editor"),
    )
    assert out["code"] == "PERMISSION_DENIED"
