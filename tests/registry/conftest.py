"""Registry fixtures: a run with a saved scikit-learn model in the team's artifact tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from cellar.models import save_model
from cellar_server.registry import guards
from cellar_server.teams.actors import Actor
from cellar_server.tracking.services import artifacts, experiments, runs

T0 = 1_700_000_000_000


@pytest.fixture(autouse=True)
def _store(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"


@pytest.fixture(autouse=True)
def _no_leftover_guards():
    before = list(guards._guards)
    yield
    guards._guards[:] = before


@pytest.fixture
def training_data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})


@pytest.fixture
def owner(members):
    return members["owner"]


@pytest.fixture
def actor(owner) -> Actor:
    return Actor(user=owner)


def upload_dir(team, root: Path, prefix: str) -> None:
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        data = file.read_bytes()
        artifacts.artifact_put(team=team, path=f"{prefix}/{file.relative_to(root).as_posix()}", chunks=[data])


@pytest.fixture
def logged_run(team, tmp_path, training_data):
    """logged_run(metrics={"auc": 0.8}) -> a finished run whose artifacts hold model/ (sklearn)."""
    counter = iter(range(1000))
    experiment = experiments.experiment_create(team=team, name="churn")

    def make(metrics: dict | None = None, params: dict | None = None, label_shift: float = 0.0):
        n = next(counter)
        run = runs.run_create(team=team, experiment=experiment, run_name=f"train-{n}", start_time=T0 + n)
        runs.run_log_batch(
            run=run,
            metrics=[{"key": k, "value": v, "timestamp": T0, "step": 0} for k, v in (metrics or {}).items()],
            params=[{"key": k, "value": str(v)} for k, v in (params or {}).items()],
            tags=[],
        )
        y = (training_data["a"] + training_data["b"] > label_shift).astype(int)
        folder = tmp_path / f"model-{n}"
        save_model(LogisticRegression().fit(training_data, y), folder, input_example=training_data.head(3))
        prefix = run.artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")
        upload_dir(team, folder, f"{prefix}/model")
        return run

    return make
