"""Fixtures for the serializer, executor and local-runner tests: a local store and spec builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.environment import python_version
from cellar.pipelines.spec import Environment, Parameter, PipelineSpec, Step, StepSource


@pytest.fixture
def local_dir(tmp_path, monkeypatch) -> Path:
    """The runner's folder; CELLAR_LOCAL_DIR points at it so nothing lands in ~/.cellar."""
    path = tmp_path / "cellar-local"
    monkeypatch.setenv("CELLAR_LOCAL_DIR", str(path))
    return path


@pytest.fixture
def store(tmp_path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def build_spec(
    steps: list[Step], parameters: list[Parameter] | None = None, source: dict[str, StepSource] | None = None
) -> PipelineSpec:
    """A spec as the compiler would hand it over (a small, fixed environment)."""
    return PipelineSpec(
        steps=steps,
        parameters=parameters or [],
        environment=Environment(python=python_version(), lock={"cellar": "0.1.0"}),
        source=source or {},
        notebook="hand-built.ipynb",
    )


@pytest.fixture
def make_spec():
    """`make_spec(steps, parameters=None, source=None)` -> PipelineSpec."""
    return build_spec
