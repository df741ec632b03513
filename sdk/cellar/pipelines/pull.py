"""`cellar pull <run> --step <name> [--index i]`: a notebook that reproduces one task of a run.

The notebook runs what the executor ran, in the same order (execute/step.py `_bind`): the run's
parameters as the run used them (a `parameters` cell, so papermill and `cellar run` know it),
the step's prelude (its imports and functions), the exact inputs loaded from the store with
`cellar.load_task`, then the step's code. Run it cell by cell; the last cell raises what the
task raised when the failure came from the inputs and code (not from the worker or the store).
"""

from __future__ import annotations

from typing import Any

import nbformat

from cellar.pipelines.load_task import LoadedTask

TAG_PULLED = "cellar-pulled"


def _header(task: LoadedTask) -> str:
    where = task.step if task.index is None else f"{task.step}[{task.index}]"
    version = task.version or {}
    lines = [
        f"# {task.pipeline} #{task.run} · task {where}",
        "",
        f"Pulled from run **#{task.run}** of pipeline **{task.pipeline}**, version "
        f"**v{version.get('number', '?')}** (`{str(version.get('id', ''))[:12]}`), task {task.task} "
        f"(state **{task.state}**).",
    ]
    error = task.error or {}
    if error:
        kind = error.get("exc_type") or error.get("type") or "Error"
        place = ", ".join(
            part
            for part in (
                f"cell {error['cell']}" if error.get("cell") is not None else "",
                f"line {error['line']}" if error.get("line") else "",
            )
            if part
        )
        lines += ["", f"It failed with `{kind}: {error.get('message', '')}`" + (f" ({place})." if place else ".")]
    if task.kind == "expand":
        lines += ["", "This task evaluated the foreach's iterable (its elements); the last cell does the same."]
    lines += [
        "",
        "The cells below are what the worker ran, in its order: the run's parameters, the step's "
        "imports and functions, the task's exact inputs (loaded from the store), then the step's code.",
    ]
    return "\n".join(lines)


def _parameters(task: LoadedTask) -> str:
    if not task.parameters:
        return "# this version has no parameters"
    return "\n".join(f"{name} = {value!r}" for name, value in sorted(task.parameters.items()))


def _loader(task: LoadedTask) -> str:
    index = "" if task.index is None else f", index={task.index}"
    names = list(task.inputs)
    lines = [
        "import cellar",
        "",
        f'task = cellar.load_task("{task.pipeline}/{task.run}", "{task.step}"{index})',
    ]
    if names:
        lines.append("globals().update(task.inputs)  # " + ", ".join(names))
    else:
        lines.append("# this task reads no input")
    if task.outputs:
        lines.append("recorded_outputs = task.outputs  # what the run stored, to compare with")
    return "\n".join(lines)


def task_notebook(task: LoadedTask) -> nbformat.NotebookNode:
    """The notebook reproducing `task` (nbformat 4, python3 kernel)."""
    meta = {"tags": [TAG_PULLED]}
    cells = [
        nbformat.v4.new_markdown_cell(_header(task), metadata=meta),
        nbformat.v4.new_code_cell(_parameters(task), metadata={"tags": ["parameters", TAG_PULLED]}),
    ]
    if task.prelude.strip():
        cells.append(nbformat.v4.new_code_cell(task.prelude.rstrip(), metadata={"tags": ["imports", TAG_PULLED]}))
    cells.append(nbformat.v4.new_code_cell(_loader(task), metadata={"tags": ["skip", TAG_PULLED]}))
    cells.append(nbformat.v4.new_code_cell(task.code.rstrip(), metadata={"tags": [f"step:{task.step}", TAG_PULLED]}))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["cellar"] = {
        "pulled": {
            "pipeline": task.pipeline,
            "run": task.run,
            "step": task.step,
            "index": task.index,
            "task": task.task,
            "version": task.version,
        }
    }
    nbformat.validate(notebook)
    return notebook


def default_path(task: LoadedTask) -> str:
    suffix = "" if task.index is None else f"-{task.index}"
    return f"{task.pipeline}-{task.run}-{task.step}{suffix}.ipynb"


def write_notebook(task: LoadedTask, path: Any) -> None:
    nbformat.write(task_notebook(task), str(path))
