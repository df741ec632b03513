"""Shared fixtures for the engine's tests: compiled versions of small notebooks, runs, and a
`FakeWorker` that plays a pool agent against the engine (directly through the services, or
through the worker API over HTTP with the per-task tokens of dispatched tasks).

The worker runs the real step code in-process with the SDK's executor core (the same
`execute_step` / `evaluate_foreach` the pool executors use) against a local artifact store,
or fabricates reports (`succeed`, `fail`) when a test needs a precise outcome.

Leases: `issue_leases()` calls the real dispatcher (`engine.dispatch.dispatch_pool`). Its
broker publish runs on commit, which a plain `django_db` test never reaches, so no broker
is needed; the worker finds its work as the database records it (tasks `dispatched`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.execute import ArtifactRef, StepFailed, evaluate_foreach, execute_step, load_artifact
from cellar.pipelines.spec import PipelineSpec
from cellar.pipelines.wire import FAILED, SUCCEEDED, Lease, TaskItem, TaskReport
from cellar_server.core.scoping import team_scope
from cellar_server.pipelines.models import (
    RUN_TERMINAL,
    TASK_DISPATCHED,
    TASK_QUEUED,
    PipelineRun,
    PipelineVersion,
    Task,
)
from cellar_server.teams.actors import Actor
from cellar_server.teams.roles import scopes_for

ENGINE_API = "/api/v1/engine/"


# --- notebooks (built with nbformat, as a notebook server would save them) --------------------------------


def cell(source: str, *tags: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


def build_notebook(*cells: nbformat.NotebookNode) -> dict[str, Any]:
    node = nbformat.v4.new_notebook(cells=list(cells))
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.validate(node)
    return json.loads(nbformat.writes(node))


def linear_notebook(*, extra: str = "") -> dict[str, Any]:
    """parameters (alpha: int, label: str) -> load -> double -> report; `extra` changes report's code."""
    return build_notebook(
        cell("alpha = 2\nlabel = 'run'", "parameters"),
        cell("x = 21", "step:load"),
        cell("y = x * alpha", "step:double"),
        cell(f"summary = f'{{label}}: {{y}}'\nprint(summary){extra}", "step:report"),
    )


def fanout_notebook(*, square_tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """make -> square (foreach over items) -> plus (branch) -> total (join) -> show."""
    return build_notebook(
        cell("n = 3\nbase = 10", "parameters"),
        cell("items = list(range(n))", "step:make"),
        cell("sq = item * item", "step:square", "foreach:items", *square_tags),
        cell("plus = sq + base", "step:plus"),
        cell("total = sum(plus)\nsqs = sq", "step:total", "join"),
        cell("print(total, sqs)", "step:show"),
    )


def failing_notebook(*, retry: int = 0) -> dict[str, Any]:
    """load -> boom (raises on line 2 of its cell, notebook cell 2) -> after."""
    tags = ("step:boom",) + ((f"retry:{retry}",) if retry else ())
    return build_notebook(
        cell("x = 1", "step:load"),
        cell("y = x + 1\nraise ValueError('bad input')\nz = y", *tags),
        cell("w = z * 2", "step:after"),
    )


# --- versions and runs ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _wide_message_window(settings):
    """The state-machine tests take what is dispatched in as many groups as they like: a window of
    16 messages keeps the dispatcher's flow control (test_dispatch_*.py) out of their way."""
    settings.CELLAR_ENGINE_POOL_WORKERS = 8


@pytest.fixture
def promote(team, members):
    """promote(notebook, name="demo") -> PipelineVersion (created by the team's admin)."""

    def make(notebook: dict[str, Any], name: str = "demo") -> PipelineVersion:
        from cellar_server.pipelines import services

        outcome = services.pipeline_version_create(
            team=team,
            pipeline_name=name,
            notebook=notebook,
            actor=Actor(user=members["admin"]),
            scopes=scopes_for("admin"),
        )
        return outcome.version

    return make


@pytest.fixture
def linear_version(promote) -> PipelineVersion:
    return promote(linear_notebook(), "linear")


@pytest.fixture
def fanout_version(promote) -> PipelineVersion:
    return promote(fanout_notebook(), "fanout")


@pytest.fixture
def start_run(team, members):
    """start_run(version, parameters=None, **kw) -> PipelineRun, started by the team's editor."""

    def make(version: PipelineVersion, parameters: dict[str, Any] | None = None, **kwargs: Any) -> PipelineRun:
        from cellar_server.pipelines.engine.runs import run_create

        return run_create(
            team=team,
            pipeline=version.pipeline,
            version=version,
            parameters=parameters or {},
            actor=Actor(user=members["editor"]),
            **kwargs,
        )

    return make


def fresh(run: PipelineRun) -> PipelineRun:
    return PipelineRun.all_teams.get(pk=run.pk)


def tasks_of(run: PipelineRun, **filters: Any) -> list[Task]:
    return list(Task.all_teams.filter(run_id=run.pk, **filters).order_by("id"))


def task_of(run: PipelineRun, step: str, index: int = -1, kind: str = "step") -> Task:
    return Task.all_teams.get(run_id=run.pk, step=step, index=index, kind=kind)


def states(run: PipelineRun) -> dict[str, str]:
    """{"step", "step[2]", "step (expand)": state} for every task of the run."""
    out = {}
    for task in tasks_of(run):
        label = f"{task.step} (expand)" if task.kind == "expand" else task.step
        out[label if task.index < 0 else f"{task.step}[{task.index}]"] = task.state
    return out


def expire_backoff(run: PipelineRun) -> None:
    """Let retries waiting out their backoff go now (tests never sleep)."""
    Task.all_teams.filter(run_id=run.pk, state=TASK_QUEUED).update(not_before=None)


# --- leases -----------------------------------------------------------------------------------------------


def issue_leases(*, pool: str | None = None) -> int:
    """Hand out leases for ready tasks with the real dispatcher; returns how many were issued."""
    from cellar_server.pipelines.engine.dispatch import dispatch_pool

    pools = [pool] if pool else sorted(set(Task.all_teams.filter(state=TASK_QUEUED).values_list("pool", flat=True)))
    return sum(dispatch_pool(pool=name) for name in pools)


# --- the worker -------------------------------------------------------------------------------------------


@dataclass
class Assigned:
    """A dispatched task as an agent holds it: the wire item plus what it needs to run it."""

    item: TaskItem
    run: int
    step: str
    team: str

    @property
    def lease(self) -> Lease:
        return Lease(task=self.item.task, lease=self.item.lease, token=self.item.token)


@dataclass
class FakeWorker:
    """Plays a pool agent. `api` (an APIClient) routes claims, heartbeats and results through
    the worker API over HTTP; without it they call the engine services directly."""

    store: LocalArtifactStore
    name: str = "worker-1"
    api: Any = None
    responses: list[dict[str, Any]] = field(default_factory=list)

    # what the dispatcher handed out
    def take(self, run: PipelineRun | None = None, *, issue: bool = True) -> list[Assigned]:
        """Leases for ready tasks (issued first unless `issue=False`), as TaskItems with tokens."""
        from cellar_server.pipelines.engine.tokens import task_token

        if issue:
            issue_leases()
        tasks = Task.all_teams.filter(state=TASK_DISPATCHED).select_related("team").order_by("id")
        if run is not None:
            tasks = tasks.filter(run_id=run.pk)
        return [
            Assigned(
                item=TaskItem(
                    task=t.pk,
                    attempt=t.attempt,
                    lease=t.lease,
                    token=task_token(t),
                    kind=t.kind,
                    index=t.index if t.index >= 0 else None,
                    inputs=t.inputs,
                    item=t.item,
                ),
                run=t.run_id,
                step=t.step,
                team=t.team.slug,
            )
            for t in tasks
        ]

    # the engine API
    def _call(self, endpoint: str, key: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.api is not None:
            response = self.api.post(ENGINE_API + endpoint, {"worker": self.name, key: entries}, format="json")
            assert response.status_code == 200, response.content
            body = response.json()
        else:
            from cellar_server.pipelines.engine import results

            service = {
                "claims/": results.tasks_claim,
                "heartbeats/": results.tasks_heartbeat,
                "results/": results.tasks_report,
            }[endpoint]
            if endpoint == "results/":
                body = service(worker=self.name, reports=[TaskReport(**e) for e in entries])
            else:
                body = service(worker=self.name, leases=[Lease(**e) for e in entries])
            body = json.loads(json.dumps(body))  # the shape the HTTP answer has: ids as strings in maps
        self.responses.append(body)
        return body

    def claim(self, assigned: list[Assigned]) -> dict[str, Any]:
        return self._call("claims/", "tasks", [vars(a.lease) for a in assigned])

    def heartbeat(self, assigned: list[Assigned]) -> dict[str, Any]:
        return self._call("heartbeats/", "tasks", [vars(a.lease) for a in assigned])

    def report(self, reports: list[TaskReport]) -> dict[str, Any]:
        return self._call("results/", "results", [r.to_dict() for r in reports])

    # outcomes
    def execute(self, assigned: Assigned) -> TaskReport:
        """Run the task's real code (foreach expansion or step) with the SDK executor core."""
        run = PipelineRun.all_teams.select_related("version").get(pk=assigned.run)
        spec = PipelineSpec.from_dict(run.version.spec)
        step = spec.step(assigned.step)
        item = assigned.item
        inputs = {
            name: [ArtifactRef.from_dict(r) for r in ref] if isinstance(ref, list) else ArtifactRef.from_dict(ref)
            for name, ref in item.inputs.items()
        }
        common = dict(parameters=run.parameters, inputs=inputs, store=self.store, team=assigned.team)
        base = dict(task=item.task, lease=item.lease, token=item.token)
        try:
            if item.kind == "expand":
                refs = evaluate_foreach(step, source=spec.source.get(step.name), **common)
                return TaskReport(**base, state=SUCCEEDED, items=[r.to_dict() for r in refs])
            element = ArtifactRef.from_dict(item.item) if item.item else None
            result = execute_step(step, item=element, source=spec.source.get(step.name), **common)
        except StepFailed as exc:
            return TaskReport(**base, state=FAILED, error=exc.to_dict())
        outputs = {name: ref.to_dict() for name, ref in result.outputs.items()}
        return TaskReport(**base, state=SUCCEEDED, outputs=outputs)

    def succeed(self, assigned: Assigned, **values: Any) -> TaskReport:
        """A success with these values stored as the outputs (items=[...] for an expand task)."""
        from cellar.pipelines.execute import store_value

        base = dict(task=assigned.item.task, lease=assigned.item.lease, token=assigned.item.token, state=SUCCEEDED)
        if "items" in values:
            refs = [store_value(v, store=self.store, team=assigned.team).to_dict() for v in values["items"]]
            return TaskReport(**base, items=refs)
        refs = {k: store_value(v, store=self.store, team=assigned.team).to_dict() for k, v in values.items()}
        return TaskReport(**base, outputs=refs)

    def fail(self, assigned: Assigned, message: str = "boom", exc_type: str = "RuntimeError") -> TaskReport:
        error = {
            "step": assigned.step,
            "exc_type": exc_type,
            "message": message,
            "phase": "code",
            "frames": [],
            "cell": 1,
            "line": 1,
            "traceback": "",
        }
        return TaskReport(
            task=assigned.item.task, lease=assigned.item.lease, token=assigned.item.token, state=FAILED, error=error
        )

    def load(self, ref: dict[str, Any], team: str = "acme") -> Any:
        return load_artifact(ArtifactRef.from_dict(ref), store=self.store, team=team)

    # the whole loop
    def drain(self, run: PipelineRun, *, rounds: int = 100) -> PipelineRun:
        """Take, claim, execute and report until the run ends (or nothing is left to do)."""
        for _ in range(rounds):
            current = fresh(run)
            if current.state in RUN_TERMINAL:
                return current
            assigned = self.take(run)
            if not assigned:
                return current
            claimed = set(self.claim(assigned)["claimed"])
            work = [a for a in assigned if str(a.item.task) in claimed or a.item.task in claimed]
            self.report([self.execute(a) for a in work])
        return fresh(run)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


@pytest.fixture
def worker(store) -> FakeWorker:
    return FakeWorker(store)


@pytest.fixture
def api_worker(store) -> FakeWorker:
    """A worker that talks HTTP to the worker API (no session, no CSRF: only task tokens)."""
    from rest_framework.test import APIClient

    return FakeWorker(store, name="api-worker", api=APIClient(enforce_csrf_checks=True))


@pytest.fixture
def scoped(team):
    """Queries as the team (the fail-closed managers need a scope)."""
    with team_scope(team.id):
        yield team
