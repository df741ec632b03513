"""Fixtures for the pool agent's tests: an artifact store in tmp_path and executor pools."""

from __future__ import annotations

import itertools
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.spec import Step
from cellar_worker.executors import ExecutorPool, executor_environment

# The engine's fixtures (a promoted version, a started run), shared with its own tests.
from tests.pipelines.engine.conftest import promote, start_run  # noqa: F401

_numbers = itertools.count(1)


@pytest.fixture
def store_dir(tmp_path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(store_dir) -> LocalArtifactStore:
    return LocalArtifactStore(store_dir)


@pytest.fixture
def pool(store_dir):
    """An executor pool writing to `store_dir`; every process it started is stopped afterwards."""
    started = ExecutorPool(env=executor_environment(artifact_store_url=f"file://{store_dir}"))
    yield started
    started.close()


def step_data(name: str = "s", code: str = "x = 1", **fields: Any) -> dict[str, Any]:
    return asdict(Step(name=name, code=code, **fields))


def task_request(logs: Path, step: dict[str, Any], *, team: str = "acme", **fields: Any) -> dict[str, Any]:
    """What the agent sends an executor for one task; logs go to files under `logs`."""
    logs.mkdir(parents=True, exist_ok=True)
    number = next(_numbers)
    request = {
        "op": "run",
        "kind": "step",
        "team": team,
        "step": step,
        "source": None,
        "parameters": {},
        "inputs": {},
        "item": None,
        "timeout": None,
        "env": {},
        "stdout": str(logs / f"{number}.stdout"),
        "stderr": str(logs / f"{number}.stderr"),
    }
    request.update(fields)
    return request


def read(path: str) -> str:
    return Path(path).read_text() if Path(path).exists() else ""
