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


def build_notebook(path: Path, cells: list) -> Path:
    """Write an .ipynb: each cell is code text, `(code, [tags])`, or `("md", text)` for markdown."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb_cells = []
    for cell in cells:
        if isinstance(cell, str):
            nb_cells.append(new_code_cell(cell))
        elif cell[0] == "md":
            nb_cells.append(new_markdown_cell(cell[1]))
        else:
            code, tags = cell
            nb_cells.append(new_code_cell(code, metadata={"tags": list(tags)}))
    nbformat.write(new_notebook(cells=nb_cells), str(path))
    return path


@pytest.fixture
def write_notebook(tmp_path):
    """`write_notebook(cells, name="pipeline.ipynb")` -> the path of a notebook in tmp_path."""

    def write(cells: list, name: str = "pipeline.ipynb") -> Path:
        return build_notebook(tmp_path / name, cells)

    return write


IRIS_CELLS = [
    ("md", "# Iris: pick the regularisation strength"),
    (
        "import numpy as np\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import train_test_split",
        ["imports"],
    ),
    ("test_size = 0.3\nC_values = [0.01, 0.1, 1.0, 10.0]\nseed = 0", ["parameters"]),
    (
        "X, y = load_iris(return_X_y=True)\n"
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    X, y, test_size=test_size, random_state=seed, stratify=y\n"
        ")\n"
        "print('train rows', len(X_train))",
        ["step:load"],
    ),
    ("md", "Each C is trained in its own task."),
    (
        "model = LogisticRegression(C=C, max_iter=1000).fit(X_train, y_train)\n"
        "score = float(model.score(X_test, y_test))\n"
        "print('C', C, 'score', score)",
        ["step:train", "foreach:C_values:C"],
    ),
    (
        "best_score, best_C, best_model = max(zip(score, C, model), key=lambda t: (t[0], -t[1]))\n"
        "tried = list(zip(C, score))\n"
        "print('best C', best_C)",
        ["step:pick", "join"],
    ),
    (
        "import json\n"
        "predictions = best_model.predict(X_test)\n"
        "accuracy = float(np.mean(predictions == y_test))\n"
        "print(json.dumps({'tried': tried, 'best_C': best_C, 'accuracy': accuracy}))",
        ["step:evaluate"],
    ),
]


@pytest.fixture
def iris_notebook(write_notebook) -> Path:
    """A realistic notebook: load iris, split, fan out over C values, train, join, pick the best, evaluate."""
    return write_notebook(IRIS_CELLS, "iris.ipynb")
