"""A/B-test fixtures: real registered model versions (scikit-learn models in the team's artifact
store, registry services), a deployment (serving services) and a test on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from cellar.models import save_model
from cellar_server.teams.actors import Actor
from cellar_server.tracking.services import artifacts, experiments, runs

PRIMARY = {"name": "converted", "kind": "proportion", "role": "primary"}


@pytest.fixture(autouse=True)
def _store(settings, tmp_path):
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"


def _register(team, actor, tmp_path: Path, model_name: str, shifts: list[float]) -> list[str]:
    """Register one version per label shift (different models, same signature); returns version ids."""
    from cellar_server.registry import services as registry

    rng = np.random.default_rng(7)
    data = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    experiment = experiments.experiment_create(team=team, name=f"train-{model_name}")
    model = registry.model_get_or_create(team=team, actor=actor, name=model_name)
    ids = []
    for i, shift in enumerate(shifts):
        run = runs.run_create(
            team=team, experiment=experiment, run_name=f"{model_name}-{i}", start_time=1_700_000_000_000 + i
        )
        folder = tmp_path / f"{team.slug}-{model_name}-{i}"
        y = (data["a"] + data["b"] > shift).astype(int)
        save_model(LogisticRegression().fit(data, y), folder, input_example=data.head(2))
        prefix = run.artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = file.relative_to(folder).as_posix()
            artifacts.artifact_put(team=team, path=f"{prefix}/model/{rel}", chunks=[file.read_bytes()])
        version = registry.version_create(team=team, actor=actor, model=model, source=f"runs:/{run.run_uuid}/model")
        ids.append(str(version.pk))
    registry.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=1)
    return ids


@pytest.fixture
def versions(team, other_team, members, outsider, tmp_path) -> dict[str, list[str]]:
    """{"ranker": [v1, v2, v3], "fraud": [v1], "rival": [v1 of rival's ranker]}; champion = v1."""
    admin = Actor(user=members["admin"])
    return {
        "ranker": _register(team, admin, tmp_path, "ranker", [0.0, 0.3, -0.3]),
        "fraud": _register(team, admin, tmp_path, "fraud", [0.0]),
        "rival": _register(other_team, Actor(user=outsider), tmp_path, "ranker", [0.0]),
    }


@pytest.fixture
def deployment(versions, team, members):
    from cellar_server.serving.services import deployment_create

    return deployment_create(
        team=team,
        actor=Actor(user=members["admin"]),
        name="ranker-api",
        routes=[{"version_id": versions["ranker"][0], "weight": 1}],
    )


@pytest.fixture
def variants(versions):
    v = versions["ranker"]
    return [{"version_id": v[0], "weight": 0.5}, {"version_id": v[1], "weight": 0.5}]


@pytest.fixture
def make_test(deployment, team, members, variants):
    from cellar_server.abtests.services import abtest_create

    def make(**overrides):
        kwargs = {
            "team": team,
            "actor": Actor(user=members["admin"]),
            "deployment_name": deployment.name,
            "name": "ranker v2 vs v1",
            "variants": variants,
            "metrics": [PRIMARY],
            "seed": "seed-1",
        }
        kwargs.update(overrides)
        return abtest_create(**kwargs)

    return make


@pytest.fixture
def create_body(variants):
    def make(**overrides) -> dict:
        body = {
            "deployment": "ranker-api",
            "name": "ranker v2 vs v1",
            "variants": variants,
            "metrics": [
                PRIMARY,
                {"name": "latency_ms", "kind": "mean", "role": "guardrail", "higher_is_better": False},
            ],
        }
        body.update(overrides)
        return body

    return make
