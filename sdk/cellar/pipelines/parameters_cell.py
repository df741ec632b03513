"""The `parameters` (papermill) / `pipeline-parameters` (Kale) cell: literal assignments only.

Each statement must be `name = <literal>` (or `name: type = <literal>`); the value is read
with `ast.literal_eval`, tuples become lists (JSON has no tuples), and it must be JSON data:
no sets, bytes, complex numbers, NaN/infinity, or dict keys that are not strings. Anything
else is `bad_parameters` naming the line, because a parameter's default is part of the
version and must be the same wherever the pipeline runs. A name assigned twice keeps the
last value (as running the cell would), with a warning.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from cellar.pipelines.errors import Problem
from cellar.pipelines.spec import Parameter


class _NotJSON(ValueError):
    pass


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON("NaN and infinity are not JSON numbers")
        return value
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJSON(f"dict keys must be strings (found {key!r})")
            out[key] = _to_json(item)
        return out
    raise _NotJSON(f"a {type(value).__name__} is not JSON data (use a list, dict, str, number, bool or None)")


def type_name(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(value)]


def parse_parameters(code: str, cell: int, line_of) -> tuple[list[Parameter], list[Problem], list[Problem]]:
    """(parameters in cell order, problems, warnings) for one parameters cell's clean code."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    found: dict[str, Parameter] = {}
    try:
        tree = ast.parse(code)
    except (RecursionError, MemoryError):
        problems.append(Problem("bad_parameters", "the parameters cell is nested too deeply to read", cell=cell))
        return [], problems, warnings
    except SyntaxError as exc:
        problems.append(
            Problem(
                "syntax_error",
                f"syntax error ({exc.msg}); a parameters cell holds assignments like `epochs = 10`",
                cell=cell,
                line=line_of(exc.lineno),
            )
        )
        return [], problems, warnings
    for node in tree.body:
        line = line_of(node.lineno)
        if isinstance(node, ast.Pass):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value_node = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value_node = node.target.id, node.value
        else:
            problems.append(
                Problem(
                    "bad_parameters",
                    "a parameters cell holds only assignments of literal values, one name each "
                    "(like `epochs = 10`); move other code to a step",
                    cell=cell,
                    line=line,
                )
            )
            continue
        try:
            value = _to_json(ast.literal_eval(value_node))
        except _NotJSON as exc:
            problems.append(Problem("bad_parameters", f"parameter '{name}': {exc}", cell=cell, line=line))
            continue
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            problems.append(
                Problem(
                    "bad_parameters",
                    f"parameter '{name}' must be a literal (a number, string, bool, None, list or dict of them), "
                    "not an expression; compute derived values in a step",
                    cell=cell,
                    line=line,
                )
            )
            continue
        if name in found:
            warnings.append(
                Problem(
                    "duplicate_parameter",
                    f"parameter '{name}' is assigned twice; the last value counts",
                    cell=cell,
                    line=line,
                )
            )
        found[name] = Parameter(name=name, default=value, type=type_name(value))
    return list(found.values()), problems, warnings
