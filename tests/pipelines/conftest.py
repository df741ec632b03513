"""Notebooks to promote and helpers for the pipelines app's tests."""

from __future__ import annotations

from typing import Any

from cellar.pipelines.spec import Environment, PipelineSpec, Resources, Step, StepSource


def code_cell(source: str, *tags: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": list(tags)} if tags else {},
        "outputs": [],
        "source": source,
    }


def markdown_cell(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def notebook(*cells: dict[str, Any]) -> dict[str, Any]:
    return {
        "cells": [{"id": f"cell-{i}", **cell} for i, cell in enumerate(cells)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def churn_notebook(*, threshold: float = 0.5, train_extra: str = "") -> dict[str, Any]:
    """A realistic notebook: imports, parameters, load, a foreach over folds, a join, a report."""
    return notebook(
        markdown_cell("# Churn model"),
        code_cell("import json\nimport math", "imports"),
        code_cell(f"threshold = {threshold}\nfolds = 3", "parameters"),
        code_cell("rows = [{'x': i, 'y': i % 2} for i in range(30)]", "step:load"),
        code_cell("fold_ids = list(range(folds))", "step:split"),
        code_cell(
            "part = [r for r in rows if r['x'] % folds == fold]\nscore = sum(r['y'] for r in part) / len(part)"
            + train_extra,
            "step:train",
            "foreach:fold_ids:fold",
        ),
        code_cell("best = max(score)\npassed = best > threshold", "step:pick", "join"),
        code_cell("report = json.dumps({'best': best, 'passed': passed, 'log': math.log(2)})", "step:report"),
    )


def make_spec(code: str = "x = 1", *, steps: int = 2, python: str = "3.11", lock: dict | None = None) -> PipelineSpec:
    """A hand-made spec: a chain of `steps` steps, the first running `code`."""
    built = []
    for i in range(steps):
        name = f"s{i}"
        built.append(
            Step(
                name=name,
                code=code if i == 0 else f"y{i} = x + {i}",
                inputs={} if i == 0 else {"x": "s0"},
                outputs=["x"] if i == 0 else [],
                upstream=[] if i == 0 else ["s0"],
                resources=Resources(),
            )
        )
    return PipelineSpec(
        steps=built,
        environment=Environment(python=python, lock=lock or {"numpy": "2.0.0"}, modules={}),
        source={s.name: StepSource(cells=[i], first_lines=[1]) for i, s in enumerate(built)},
    )
