"""Builders for the dispatcher, reconciler and schedule tests: versions in any team, runs and
ready tasks written straight to the database (so the dispatcher is tested on exactly the rows
it sees, at any scale), a private pool per test, and the broker messages read back from Redis.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from django.db.models import Max

from cellar_server.pipelines import services
from cellar_server.pipelines.engine.dispatch import batch_from_message, pool_queue
from cellar_server.pipelines.models import RUN_RUNNING, TASK_QUEUED, PipelineRun, PipelineVersion, Task
from cellar_server.teams.actors import SYSTEM
from cellar_server.teams.models import Team
from cellar_server.teams.roles import scopes_for
from tests.pipelines.engine.conftest import fanout_notebook, linear_notebook


def version_for(
    team: Team, notebook: dict[str, Any] | None = None, name: str = "fan", *, production: bool = False
) -> PipelineVersion:
    """A version of `notebook` (the fan-out notebook by default) in `team`, optionally made production."""
    outcome = services.pipeline_version_create(
        team=team,
        pipeline_name=name,
        notebook=notebook or fanout_notebook(),
        actor=SYSTEM,
        scopes=scopes_for("admin"),
        production=production,
    )
    return outcome.version


def linear_version_for(team: Team) -> PipelineVersion:
    return version_for(team, linear_notebook(), name="linear")


def make_run(version: PipelineVersion, *, parameters: dict[str, Any] | None = None, **fields: Any) -> PipelineRun:
    number = (PipelineRun.all_teams.filter(pipeline_id=version.pipeline_id).aggregate(n=Max("number"))["n"] or 0) + 1
    return PipelineRun.all_teams.create(
        team_id=version.team_id,
        pipeline_id=version.pipeline_id,
        version=version,
        number=number,
        parameters=parameters if parameters is not None else {"n": 3, "base": 10},
        state=fields.pop("state", RUN_RUNNING),
        tracking_run=fields.pop("tracking_run", uuid.uuid4().hex),
        **fields,
    )


def add_tasks(
    run: PipelineRun, step: str, count: int, *, pool: str = "cpu", first_index: int = 0, **fields: Any
) -> list[Task]:
    """`count` ready tasks of `step` (indexes first_index.. ; a single task gets index -1)."""
    rows = [
        Task(
            team_id=run.team_id,
            run=run,
            step=step,
            index=first_index + i if count > 1 else -1,
            pool=pool,
            state=fields.get("state", TASK_QUEUED),
            inputs=fields.get("inputs", {}),
            item={"sha256": f"{i:064x}", "serializer": "json", "size": 1, "type": "int"} if count > 1 else None,
            **{k: v for k, v in fields.items() if k not in ("state", "inputs")},
        )
        for i in range(count)
    ]
    Task.all_teams.bulk_create(rows, batch_size=2000)
    return list(Task.all_teams.filter(run=run, step=step).order_by("id"))


@pytest.fixture
def pool(settings) -> str:
    """A pool name no other test (or running agent) uses, configured beside `cpu`."""
    name = f"t{uuid.uuid4().hex[:10]}"
    # `cpu` too: the notebooks compile against the configured pools and their steps ask for cpu.
    settings.CELLAR_POOLS = json.dumps({"cpu": {"cpu": 1}, name: {"cpu": 1}})
    settings.CELLAR_ENGINE_POOL_WORKERS = 1
    settings.CELLAR_ENGINE_WINDOW_FACTOR = 2
    settings.CELLAR_ENGINE_MAX_BATCH = 200
    # Tasks here never ran, so every step's task time is unknown: messages take the largest size
    # instead of the probe's, which has its own tests (test_dispatch_sizing.py).
    settings.CELLAR_ENGINE_PROBE_BATCH = 200
    return name


def reset_publisher_pools() -> None:
    """Forget the control app's cached broker connections, so a changed broker_url takes effect
    (Celery keeps the pool it first made for the life of the app)."""
    from cellar_server.celery import app

    app._after_fork()


@pytest.fixture
def control_broker(broker):
    """The control app publishing to the test Redis (its cached connection pools reset around the test)."""
    reset_publisher_pools()
    yield broker
    reset_publisher_pools()


@pytest.fixture
def queue_reader(control_broker):
    """queue_reader(pool) -> the Batch dicts waiting on `pool.<pool>`, oldest first."""
    client = redis.Redis.from_url(control_broker)

    def read(pool_name: str) -> list[dict[str, Any]]:
        raw = client.lrange(pool_queue(pool_name), 0, -1)
        # kombu LPUSHes and consumers BRPOP: the oldest message is last in the list.
        return [batch_from_message(message) for message in reversed(raw)]

    yield read
    client.close()
