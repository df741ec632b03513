"""Registering and batch scoring from pipeline steps on the real engine (web + control + pool agent).

The steps call `cellar.register_model(..., alias="champion", gate="auc")` and
`cellar.score_batch(model="churn@champion", ...)` with their task tokens; the run was started by
an admin, so the step may move the alias. A second run with a worse metric is registered but the
gate keeps `champion` where it was.
"""

from __future__ import annotations

import pytest

from cellar_server.core.scoping import team_scope
from cellar_server.pipelines.models import PipelineRun
from cellar_server.registry import lineage, selectors
from cellar_server.registry.models import ModelVersion
from cellar_server.tracking.models import ArtifactFile, Run
from tests.engine_e2e.conftest import engine, stack  # noqa: F401  (the module's process stack)
from tests.engine_e2e.test_engine_e2e import promote
from tests.factories import mint_token
from tests.pipelines.engine.conftest import build_notebook, cell

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

TRAIN = """\
rng = np.random.default_rng(7)
X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
y = (X["a"] + X["b"] > 0).astype(int)
model = LogisticRegression().fit(X, y)
registered = cellar.register_model(model, "churn", metrics={"auc": auc}, input_example=X.head(3),
                                   training_data=X, alias="champion", gate="auc")
moved = registered.alias_moved
"""
SCORE = """\
pd.DataFrame({"id": range(50), "a": np.linspace(-2, 2, 50), "b": np.zeros(50)}).to_csv(data_path, index=False)
scored = cellar.score_batch(model="churn@champion", dataset=data_path, output="scores.csv", keep=["id"])
rows = scored.rows
"""


def churn_notebook() -> dict:
    return build_notebook(
        cell(
            "import cellar\nimport numpy as np\nimport pandas as pd\n"
            "from sklearn.linear_model import LogisticRegression",
            "imports",
        ),
        cell("auc = 0.8\ndata_path = 'customers.csv'", "parameters"),
        cell(TRAIN, "step:train"),
        cell(SCORE, "step:score", "prev:train"),
    )


def test_register_gate_and_score_from_steps(engine, team, members, tmp_path):  # noqa: F811
    token = mint_token(team, members["admin"])[1]
    data_path = str(tmp_path / "customers.csv")
    done = promote(
        engine, token, churn_notebook(), "churn", tmp_path, "--run", "-p", f"data_path={data_path}", "--wait"
    )
    assert done.returncode == 0, done.stderr + engine.output("control")[-3000:]
    first = PipelineRun.all_teams.get(pipeline__name="churn")
    version = ModelVersion.all_teams.select_related("task", "run").get(team=team, model__name="churn", version=1)
    assert version.task.step == "train" and version.task.run_id == first.pk
    assert version.run_uuid == first.tracking_run and version.metrics == {"auc": 0.8}
    assert version.profile["n_rows"] == 200 and version.flavor == "sklearn"
    assert selectors.model_version_get(team=team, name="churn", alias="champion").version == 1

    with team_scope(team.id):
        graph = lineage.version_lineage(team=team, version=version)
    assert graph["pipeline"]["pipeline"] == "churn" and graph["pipeline"]["step"] == "train"
    assert "register_model" in graph["pipeline"]["code"] and graph["pipeline"]["environment"]
    assert graph["run"]["run_uuid"] == first.tracking_run

    # The scoring step's run holds the predictions and names the model version and the data.
    scoring = Run.all_teams.get(run_uuid=first.tracking_run)
    tags = dict(scoring.tags.values_list("key", "value"))
    assert tags["cellar.scoring.model"] == "churn/1" and tags["cellar.scoring.rows"] == "50"
    assert tags["cellar.scoring.model_version_id"] == str(version.pk)
    scores = ArtifactFile.all_teams.get(team=team, path__endswith="/artifacts/scores.csv")
    from cellar.artifacts.local import LocalArtifactStore

    csv = LocalArtifactStore(engine.store_dir).get_blob("acme", scores.sha256).decode().splitlines()
    assert csv[0] == "id,prediction" and len(csv) == 51
    assert csv[1].endswith(",0") and csv[-1].endswith(",1")  # a = -2 -> class 0, a = 2 -> class 1

    # A worse model from a second run: registered as v2, champion stays on v1.
    done = promote(
        engine,
        token,
        churn_notebook(),
        "churn",
        tmp_path,
        "--run",
        "-p",
        "auc=0.6",
        "-p",
        f"data_path={data_path}",
        "--wait",
    )
    assert done.returncode == 0, done.stderr
    assert ModelVersion.all_teams.filter(team=team, model__name="churn").count() == 2
    assert selectors.model_version_get(team=team, name="churn", alias="champion").version == 1


def test_a_step_of_an_editors_run_cannot_move_the_alias(engine, team, members, tmp_path):  # noqa: F811
    token = mint_token(team, members["editor"])[1]
    done = promote(
        engine, token, churn_notebook(), "churn", tmp_path, "--run", "-p", f"data_path={tmp_path / 'x.csv'}", "--wait"
    )
    assert done.returncode != 0
    run = PipelineRun.all_teams.get(pipeline__name="churn")
    assert run.state == "failed" and "models:promote" in str(run.error)
    assert not ModelVersion.all_teams.filter(team=team).exists()
