"""Builders for tracking data: experiments, runs, metric histories and artifacts.

Small amounts go through the services (what the MLflow API calls); large volumes
(thousands of runs, 100k-step histories) are bulk-inserted with the same shapes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable

import pytest
from django.db import connection

from cellar_server.core.scoping import team_scope
from cellar_server.teams.models import Team
from cellar_server.tracking import curves
from cellar_server.tracking.models import Experiment, LatestMetric, Metric, Param, Run, RunTag
from cellar_server.tracking.search import documents
from cellar_server.tracking.services import artifacts, experiments, runs
from tests.factories import mint_token

BASE = "/t/acme/mlflow/api/2.0/mlflow/"
T0 = 1_700_000_000_000  # a fixed epoch-ms origin keeps orderings deterministic


class TrackingBuilder:
    def __init__(self, team: Team):
        self.team = team
        self._clock = T0

    def _tick(self, ms: int = 60_000) -> int:
        self._clock += ms
        return self._clock

    def experiment(self, name: str = "churn") -> Experiment:
        return experiments.experiment_create(team=self.team, name=name)

    def run(
        self,
        experiment: Experiment,
        *,
        name: str = "",
        params: dict | None = None,
        metrics: dict | None = None,
        tags: dict | None = None,
        history: dict[str, Iterable[tuple[int, float]]] | None = None,
        status: str = "FINISHED",
        duration_ms: int = 95_000,
    ) -> Run:
        start = self._tick()
        run = runs.run_create(team=self.team, experiment=experiment, run_name=name, start_time=start)
        batch_metrics = [{"key": k, "value": v, "timestamp": start, "step": 0} for k, v in (metrics or {}).items()]
        runs.run_log_batch(
            run=run,
            params=[{"key": k, "value": str(v)} for k, v in (params or {}).items()],
            tags=[{"key": k, "value": str(v)} for k, v in (tags or {}).items()],
            metrics=batch_metrics,
        )
        for key, points in (history or {}).items():
            self.log_history(run, key, points)
        if status != "RUNNING":
            runs.run_update(run=run, status=status, end_time=start + duration_ms)
        return run

    def log_history(self, run: Run, key: str, points: Iterable[tuple[int, float]]) -> None:
        """Through the service, 1,000 points per batch (the API's limit)."""
        batch: list[dict] = []
        for step, value in points:
            batch.append({"key": key, "value": value, "timestamp": T0 + step, "step": step})
            if len(batch) == 1000:
                runs.run_log_batch(run=run, metrics=batch)
                batch = []
        if batch:
            runs.run_log_batch(run=run, metrics=batch)

    def bulk_history(self, run: Run, key: str, steps: int, value: Callable[[int], float]) -> None:
        """A long history inserted directly (100k steps in a second), with its latest value."""
        Metric.objects.bulk_create(
            [Metric(run=run, key=key, value=value(s), step=s, timestamp=T0 + s) for s in range(steps)],
            batch_size=5000,
        )
        last = steps - 1
        LatestMetric.objects.update_or_create(
            run=run, key=key, defaults={"value": value(last), "step": last, "timestamp": T0 + last}
        )
        self.summarize(run, key)
        documents.rebuild([run.pk])

    def summarize(self, run: Run, key: str) -> None:
        """The step-bucket summaries the service keeps, for histories inserted directly."""
        points = Metric.objects.filter(run=run, key=key, is_nan=False).values_list("key", "value", "step")
        with connection.cursor() as cursor:
            curves.write_bucket_rows(cursor, curves.bucket_rows(run.pk, points.iterator()))

    def bulk_runs(
        self,
        experiment: Experiment,
        count: int,
        *,
        params: Callable[[int], dict] | None = None,
        metrics: Callable[[int], dict] | None = None,
        tags: Callable[[int], dict] | None = None,
    ) -> list[Run]:
        """`count` finished runs with params/latest metrics/tags, bulk-inserted."""
        made = [
            Run(
                team=self.team,
                run_uuid=uuid.uuid4().hex,
                experiment=experiment,
                name=f"bulk-{i:05d}",
                user_name="bulk",
                status="FINISHED",
                start_time=self._tick(1000),
                end_time=self._clock + 500,
                artifact_uri=f"mlflow-artifacts:/{experiment.number}/x{i}/artifacts",
            )
            for i in range(count)
        ]
        Run.all_teams.bulk_create(made, batch_size=2000)
        made = list(Run.all_teams.filter(team=self.team, experiment=experiment).order_by("start_time"))[-count:]
        rows_p, rows_m, rows_t = [], [], []
        for i, run in enumerate(made):
            rows_p += [Param(run=run, key=k, value=str(v)) for k, v in (params(i) if params else {}).items()]
            rows_m += [
                LatestMetric(run=run, key=k, value=v, step=0, timestamp=T0)
                for k, v in (metrics(i) if metrics else {}).items()
            ]
            rows_t += [RunTag(run=run, key=k, value=str(v)) for k, v in (tags(i) if tags else {}).items()]
        Param.objects.bulk_create(rows_p, batch_size=5000)
        LatestMetric.objects.bulk_create(rows_m, batch_size=5000)
        RunTag.objects.bulk_create(rows_t, batch_size=5000)
        documents.rebuild([run.pk for run in made])  # what a bulk load owes the searches (PostgreSQL)
        return made

    def artifact(self, run: Run, relative: str, data: bytes) -> None:
        root = run.artifact_uri.removeprefix("mlflow-artifacts:/")
        artifacts.artifact_put(team=self.team, path=f"{root}/{relative}", chunks=[data])

    def scoped(self):
        return team_scope(self.team.id)


@pytest.fixture
def artifact_folder(settings, tmp_path):
    """Artifacts in a folder of this test's own."""
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifacts'}"


@pytest.fixture
def tracking(team) -> TrackingBuilder:
    return TrackingBuilder(team)


@pytest.fixture
def rival_tracking(other_team) -> TrackingBuilder:
    return TrackingBuilder(other_team)


class Mlflow:
    """A thin MLflow-wire client over Django's test client."""

    def __init__(self, client, raw_token: str, base: str = BASE):
        self.client, self.base = client, base
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_token}"}

    def post(self, endpoint: str, body: dict | str):
        data = body if isinstance(body, str) else json.dumps(body)
        return self.client.post(self.base + endpoint, data, content_type="application/json", **self.headers)

    def get(self, endpoint: str, **params):
        return self.client.get(self.base + endpoint, params, **self.headers)

    def run(self, experiment_id: str = "0") -> str:
        response = self.post("runs/create", {"experiment_id": experiment_id, "start_time": 1000})
        assert response.status_code == 200, response.content
        return response.json()["run"]["info"]["run_id"]


@pytest.fixture
def ml(client, team, members):
    return Mlflow(client, mint_token(team, members["editor"])[1])
