"""Fixtures for the compiler's tests: the committed corpus and a fixed environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellar.pipelines.compiler import CompileResult, compile_notebook
from cellar.pipelines.errors import CompileError
from cellar.pipelines.spec import Environment

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
# A fixed environment keeps version ids independent of what this interpreter has installed.
ENV = Environment(python="3.11", lock={"numpy": "2.0.0", "pandas": "2.2.0"}, modules={"numpy": "numpy"})


def corpus_path(name: str) -> Path:
    return NOTEBOOKS / f"{name}.ipynb"


def compile_corpus(name: str, **options) -> CompileResult:
    options.setdefault("environment", ENV)
    return compile_notebook(corpus_path(name), **options)


def problems_of(name: str, **options) -> list[tuple[str, int | None, str | None, int | None]]:
    """(code, cell, step, line) of every problem compiling the corpus notebook reports."""
    options.setdefault("environment", ENV)
    with pytest.raises(CompileError) as caught:
        compile_notebook(corpus_path(name), **options)
    return [(p.code, p.cell, p.step, p.line) for p in caught.value.problems]


def flow(result: CompileResult) -> dict[str, tuple[dict, list, list]]:
    """step -> (inputs, outputs, upstream)."""
    return {s.name: (s.inputs, s.outputs, s.upstream) for s in result.spec.steps}


def make_notebook(*cells):
    """make_notebook("x = 1", ("y = x", ["step:b"]), ...): code cells, optionally tagged."""
    from nbformat.v4 import new_code_cell, new_notebook

    built = []
    for cell in cells:
        source, tags = (cell, []) if isinstance(cell, str) else cell
        built.append(new_code_cell(source, metadata={"tags": list(tags)} if tags else {}))
    return new_notebook(cells=built)


def compile_cells(*cells, **options) -> CompileResult:
    options.setdefault("environment", ENV)
    return compile_notebook(make_notebook(*cells), **options)


def cell_problems(*cells, **options) -> list[tuple[str, int | None, str | None, int | None]]:
    options.setdefault("environment", ENV)
    with pytest.raises(CompileError) as caught:
        compile_notebook(make_notebook(*cells), **options)
    return [(p.code, p.cell, p.step, p.line) for p in caught.value.problems]
