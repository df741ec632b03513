"""Routing by resources at promote time: a step tagged gpu:N lands on a GPU pool only, a step without
one never does, against the pools the compute app defines (the dispatcher then sends each task
to its pool's queue, `pool.<name>`: test_supervisor_processes.py runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellar.pipelines.compiler import compile_notebook
from cellar_server.pipelines import pools, services
from cellar_server.pipelines.errors import PipelineError
from cellar_server.teams.actors import SYSTEM
from cellar_server.teams.roles import scopes_for
from tests.pipelines.conftest import code_cell, notebook

pytestmark = pytest.mark.django_db
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gpu_training" / "train_gpu.ipynb"


def promote(team, nb):
    return services.pipeline_version_create(
        team=team, pipeline_name="route", notebook=nb, actor=SYSTEM, scopes=scopes_for("admin")
    ).version


def resources(version) -> dict[str, dict]:
    return {step["name"]: step["resources"] for step in version.spec["steps"]}


def problem_codes(team, nb) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        promote(team, nb)
    return [problem["code"] for problem in caught.value.detail["problems"]]


def test_gpu_steps_go_to_the_gpu_pool_and_the_rest_to_cpu(team, settings):
    settings.CELLAR_POOLS = ""
    version = promote(team, notebook(code_cell("x = 1", "step:prep"), code_cell("y = x * 2", "step:train", "gpu:1")))
    assert resources(version)["prep"]["pool"] == "cpu" and resources(version)["train"]["pool"] == "gpu"


def test_a_step_without_a_gpu_tag_is_refused_on_a_gpu_pool(team, settings):
    settings.CELLAR_POOLS = ""
    assert problem_codes(team, notebook(code_cell("x = 1", "step:a", "pool:gpu"))) == ["gpu_pool_needs_gpu_tag"]


def test_a_gpu_step_is_refused_on_a_cpu_pool(team, settings):
    settings.CELLAR_POOLS = ""
    assert problem_codes(team, notebook(code_cell("x = 1", "step:a", "gpu:1", "pool:cpu"))) == ["resource_unavailable"]


def test_the_gpu_example_trains_on_the_gpu_pool(settings):
    settings.CELLAR_POOLS = ""
    spec = compile_notebook(EXAMPLE, pools=pools.pool_offers(), notebook_name=EXAMPLE.name).spec
    placed = {step.name: (step.resources.pool, step.resources.gpu) for step in spec.steps}
    assert placed == {"data": ("cpu", 0), "train": ("gpu", 1), "report": ("cpu", 0)}
