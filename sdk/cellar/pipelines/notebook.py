"""Reading a notebook for the compiler: nbformat 4, validated, as a list of code cells.

`source` may be a path, the notebook's JSON text, a dict or an nbformat node. Anything that
is not a valid nbformat notebook is one `bad_notebook` problem that says what is wrong.
Cell indices are 0-based over *all* cells (markdown and raw included), because that is
what a person counts in the notebook and what every problem names.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from cellar.pipelines.errors import CompileError, Problem


@dataclass(frozen=True)
class Cell:
    index: int  # 0-based over all cells
    source: str  # the cell's text, line endings normalised to \n
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Notebook:
    cells: list[Cell]  # code cells only, in notebook order
    total_cells: int  # every cell, markdown and raw included
    name: str = ""


def _bad(message: str) -> CompileError:
    return CompileError([Problem("bad_notebook", message)])


def _read_source(source: Any) -> tuple[dict, str]:
    """The notebook as a plain dict, and the file name when it came from a path."""
    if isinstance(source, dict):  # nbformat nodes are dicts too
        return json.loads(json.dumps(source)), ""
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text, name = source, ""
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise _bad(f"cannot read the notebook {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise _bad(f"{path} is not UTF-8 text; is it really a notebook (.ipynb)?") from None
        name = path.name
    else:
        raise _bad(f"cannot read a notebook from a {type(source).__name__}; pass a path, JSON text or a dict")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(f"the notebook is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise _bad("the notebook's JSON is not an object; is this an .ipynb file?")
    return data, name


def load_notebook(source: Any, *, name: str = "") -> Notebook:
    """Read and validate a notebook (nbformat 4; older major versions are converted)."""
    data, file_name = _read_source(source)
    major = data.get("nbformat")
    if not isinstance(major, int):
        raise _bad("this is not a Jupyter notebook: it has no 'nbformat' version")
    try:
        with warnings.catch_warnings():
            # Notebooks saved before nbformat 4.5 have no cell ids; they are fine here.
            warnings.simplefilter("ignore")
            node = nbformat.from_dict(data)
            if major != 4:
                node = nbformat.convert(node, 4)
            nbformat.validate(node)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", []) or [])
        detail = exc.message if hasattr(exc, "message") else str(exc).splitlines()[0]
        raise _bad(f"the notebook is not valid nbformat 4{f' at {where}' if where else ''}: {detail}") from None
    except Exception as exc:  # nbformat raises assorted errors for unconvertible input
        raise _bad(f"the notebook cannot be read as nbformat 4: {exc}") from None
    cells = []
    for index, cell in enumerate(node.cells):
        if cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        if isinstance(text, list):
            text = "".join(text)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        tags = cell.get("metadata", {}).get("tags") or []
        cells.append(Cell(index=index, source=text, tags=[str(t) for t in tags]))
    return Notebook(cells=cells, total_cells=len(node.cells), name=name or file_name)


def parse_cell_selection(text: str) -> list[int]:
    """`0,2,5-9` -> [0, 2, 5, 6, 7, 8, 9] (what `--cells` takes). Raises ValueError."""
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, _, high = part.partition("-")
            start, end = int(low), int(high)
            if start < 0 or end < start:
                raise ValueError(f"bad cell range '{part}': write it as low-high with low <= high")
            chosen.update(range(start, end + 1))
        else:
            value = int(part)
            if value < 0:
                raise ValueError(f"bad cell index '{part}': cells are counted from 0")
            chosen.add(value)
    return sorted(chosen)
