"""The unmodified `mlflow` client against a live Cellar server: what data scientists run today."""

from __future__ import annotations

import pytest

from cellar_server.tracking.models import ArtifactFile, Experiment, LatestMetric, Metric, Param, Run
from tests.factories import mint_token
from tests.tracking.mlflow_client import run_mlflow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


@pytest.fixture
def mlflow_env(live_server, team, members):
    _, raw = mint_token(team, members["editor"])
    return {"url": f"{live_server.url}/t/acme/mlflow", "token": raw}


def test_fluent_logging_round_trip(mlflow_env, team):
    out = run_mlflow(
        """
        mlflow.set_experiment("churn")
        with mlflow.start_run(run_name="baseline") as run:
            mlflow.log_params({"lr": 0.01, "optimizer": "adam"})
            mlflow.log_param("epochs", 3)
            for step in range(20):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metrics({"acc": 0.91, "nan_metric": float("nan"), "inf_metric": float("inf")})
            mlflow.set_tags({"owner": "alice", "stage": "dev"})
        client = MlflowClient()
        got = client.get_run(run.info.run_id)
        out["run_id"] = run.info.run_id
        out["status"] = got.info.status
        out["name"] = got.info.run_name
        out["params"] = got.data.params
        out["metrics"] = {k: repr(v) for k, v in got.data.metrics.items()}
        out["tags"] = {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")}
        out["history"] = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
        out["experiment_id"] = got.info.experiment_id
        """,
        **mlflow_env,
    )
    assert out["status"] == "FINISHED" and out["name"] == "baseline"
    assert out["params"] == {"lr": "0.01", "optimizer": "adam", "epochs": "3"}
    assert out["metrics"] == {"loss": "0.05", "acc": "0.91", "nan_metric": "nan", "inf_metric": "inf"}
    assert out["tags"] == {"owner": "alice", "stage": "dev"}
    assert out["history"] == [[s, 1.0 / (s + 1)] for s in range(20)]
    run = Run.all_teams.get(run_uuid=out["run_id"])
    assert run.team == team and run.experiment.name == "churn" and str(run.experiment.number) == out["experiment_id"]
    assert Metric.objects.filter(run=run, key="loss").count() == 20
    assert LatestMetric.objects.get(run=run, key="nan_metric").is_nan


def test_default_experiment_is_per_team(mlflow_env, team, other_team):
    out = run_mlflow(
        """
        with mlflow.start_run() as run:
            mlflow.log_metric("m", 1)
        out["experiment_id"] = run.info.experiment_id
        out["default_name"] = MlflowClient().get_experiment("0").name
        """,
        **mlflow_env,
    )
    assert out == {"experiment_id": "0", "default_name": "Default"}
    assert Experiment.all_teams.get(team=team, number=0).runs.count() == 1
    assert not Experiment.all_teams.filter(team=other_team).exists()


def test_artifacts_upload_list_download(mlflow_env, team):
    out = run_mlflow(
        """
        d = pathlib.Path(tempfile.mkdtemp())
        (d / "notes.txt").write_text("hello cellar")
        (d / "plots").mkdir()
        (d / "plots" / "curve.csv").write_text("step,loss\\n0,1.0\\n")
        (d / "plots" / "deep").mkdir()
        (d / "plots" / "deep" / "x.json").write_text("{}")
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(d / "notes.txt"))
            mlflow.log_artifacts(str(d / "plots"), artifact_path="plots")
        client = MlflowClient()
        rid = run.info.run_id
        out["root"] = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(rid)]
        out["plots"] = [(f.path, f.is_dir) for f in client.list_artifacts(rid, "plots")]
        target = tempfile.mkdtemp()
        out["notes"] = open(client.download_artifacts(rid, "notes.txt", target)).read()
        whole = client.download_artifacts(rid, "plots", tempfile.mkdtemp())
        out["tree"] = sorted(str(p.relative_to(whole)) for p in pathlib.Path(whole).rglob("*") if p.is_file())
        out["rid"] = rid
        """,
        **mlflow_env,
    )
    assert out["root"] == [["notes.txt", False, 12], ["plots", True, None]]
    assert out["plots"] == [["plots/curve.csv", False], ["plots/deep", True]]
    assert out["notes"] == "hello cellar"
    assert out["tree"] == ["curve.csv", "deep/x.json"]
    paths = set(ArtifactFile.all_teams.filter(team=team).values_list("path", flat=True))
    assert any(p.endswith(f"{out['rid']}/artifacts/plots/deep/x.json") for p in paths)


def test_search_runs_filter_order_and_pagination(mlflow_env, team):
    out = run_mlflow(
        """
        exp_id = mlflow.create_experiment("sweep")
        client = MlflowClient()
        for i in range(12):
            run = client.create_run(exp_id, run_name=f"r{i:02d}")
            client.log_batch(run.info.run_id, params=[mlflow.entities.Param("opt", "adam" if i % 2 else "sgd")],
                             metrics=[mlflow.entities.Metric("acc", i / 10, 0, 0)])
            client.set_terminated(run.info.run_id)
        found = mlflow.search_runs([exp_id], filter_string="metrics.acc > 0.3 and params.opt = 'adam'",
                                   order_by=["metrics.acc DESC"], output_format="list")
        out["filtered"] = [r.info.run_name for r in found]
        page1 = client.search_runs([exp_id], order_by=["attributes.run_name ASC"], max_results=5)
        page2 = client.search_runs([exp_id], order_by=["attributes.run_name ASC"], max_results=5,
                                   page_token=page1.token)
        page3 = client.search_runs([exp_id], order_by=["attributes.run_name ASC"], max_results=5,
                                   page_token=page2.token)
        out["pages"] = [[r.info.run_name for r in p] for p in (page1, page2, page3)]
        out["last_token"] = page3.token
        out["like"] = len(client.search_runs([exp_id], filter_string="attributes.run_name LIKE 'r1%'"))
        out["null"] = len(client.search_runs([exp_id], filter_string="params.missing IS NULL"))
        try:
            client.search_runs([exp_id], filter_string="metrics.acc >> 1")
        except mlflow.exceptions.MlflowException as exc:
            out["bad"] = [exc.error_code, exc.message]
        """,
        **mlflow_env,
    )
    assert out["filtered"] == ["r11", "r09", "r07", "r05"]
    assert out["pages"] == [
        ["r00", "r01", "r02", "r03", "r04"],
        ["r05", "r06", "r07", "r08", "r09"],
        ["r10", "r11"],
    ]
    assert out["last_token"] is None
    assert out["like"] == 2 and out["null"] == 12
    assert out["bad"][0] == "INVALID_PARAMETER_VALUE" and "'>>'" in out["bad"][1]


def test_param_rewrite_is_refused_and_same_value_accepted(mlflow_env):
    out = run_mlflow(
        """
        with mlflow.start_run() as run:
            mlflow.log_param("lr", "0.1")
            mlflow.log_param("lr", "0.1")
            try:
                mlflow.log_param("lr", "0.2")
            except mlflow.exceptions.MlflowException as exc:
                out["error"] = [exc.error_code, exc.message]
        out["lr"] = MlflowClient().get_run(run.info.run_id).data.params["lr"]
        """,
        **mlflow_env,
    )
    assert out["lr"] == "0.1"
    assert out["error"][0] == "INVALID_PARAMETER_VALUE" and "Changing param values is not allowed" in out["error"][1]


def test_log_model_and_load_by_run_uri(mlflow_env, team):
    out = run_mlflow(
        """
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        X, y = load_iris(return_X_y=True)
        mlflow.set_experiment("iris")
        with mlflow.start_run() as run:
            model = LogisticRegression(max_iter=300).fit(X, y)
            info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
        loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
        out["by_run"] = loaded.predict(X[:5]).tolist()
        out["by_model"] = mlflow.pyfunc.load_model(info.model_uri).predict(X[:5]).tolist()
        out["expected"] = model.predict(X[:5]).tolist()
        out["model_id"] = info.model_id
        """,
        **mlflow_env,
    )
    assert out["by_run"] == out["expected"] == out["by_model"]
    assert ArtifactFile.all_teams.filter(team=team, path__contains=out["model_id"]).exists()


def test_token_of_another_team_is_refused(live_server, team, other_team, outsider):
    _, raw = mint_token(other_team, outsider)
    out = run_mlflow(
        """
        try:
            mlflow.set_experiment("x")
        except mlflow.exceptions.MlflowException as exc:
            out["error"] = exc.error_code
        """,
        url=f"{live_server.url}/t/acme/mlflow",
        token=raw,
    )
    assert out["error"] == "RESOURCE_DOES_NOT_EXIST"
    assert not Param.objects.exists()
