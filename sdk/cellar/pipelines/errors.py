"""Compile problems: each names the cell (index and step) and the line, with a stable code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    # Stable codes: syntax_error, undefined_name, cycle, unknown_prev, duplicate_step,
    # bad_tag, bad_parameters, magic, pip_magic, unknown_pool, resource_unavailable,
    # unserializable, nested_foreach, join_without_foreach, foreach_without_join,
    # empty_pipeline, bad_notebook, missing_package, branch_output
    code: str
    message: str
    cell: int | None = None  # notebook cell index, 0-based, every cell counted
    step: str | None = None
    line: int | None = None  # line within the cell, 1-based

    def where(self) -> str:
        parts = []
        if self.cell is not None:
            parts.append(f"cell {self.cell}")
        if self.step:
            parts.append(f"step '{self.step}'")
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CompileError(Exception):
    """The notebook cannot become a pipeline; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
