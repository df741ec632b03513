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
