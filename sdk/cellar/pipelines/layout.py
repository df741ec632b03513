"""How a notebook's cells become steps, before any name is resolved: each cell's tags,
magic-free code and analysis (`prepare_cell`), the roles of special cells, which cells form
which step, and the parameters cells (`lay_out`, `collect_parameters`). The rules are in
compiler.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cellar.pipelines.analysis import CellAnalysis, analyze_cell
from cellar.pipelines.dataflow import StepFlow
from cellar.pipelines.errors import Problem
from cellar.pipelines.magics import CleanCell, clean_cell
from cellar.pipelines.notebook import Cell
from cellar.pipelines.parameters_cell import parse_parameters
from cellar.pipelines.spec import Parameter
from cellar.pipelines.tags import CellTags, parse_tags


def syntax_message(exc: SyntaxError) -> str:
    text = (exc.text or "").strip()
    shown = f": {text}" if text else ""
    return f"syntax error ({exc.msg}){shown}; fix the code or tag the cell `skip`"


@dataclass(eq=False)
class PreparedCell:
    cell: Cell
    tags: CellTags
    clean: CleanCell | None = None
    analysis: CellAnalysis | None = None
    broken: bool = False  # a syntax or magic error: its names are unknown

    @property
    def index(self) -> int:
        return self.cell.index


@dataclass(eq=False)
class Draft:
    """A step being assembled."""

    name: str
    head: PreparedCell | None  # the cell whose tags configure the step
    cells: list[PreparedCell] = field(default_factory=list)
    flow: StepFlow = field(default_factory=StepFlow)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    parameters: set[str] = field(default_factory=set)
    upstream: set[str] = field(default_factory=set)
    branch_of: str | None = None
    closes: str | None = None  # a join step: the foreach step whose branches it collects
    prelude: str = ""
    imports: list[str] = field(default_factory=list)

    @property
    def tags(self) -> CellTags:
        return self.head.tags if self.head else CellTags()

    @property
    def first(self) -> int:
        return self.cells[0].index

    @property
    def cell(self) -> int:
        return self.head.index if self.head else self.first


def prepare_cell(cell: Cell, problems: list[Problem]) -> PreparedCell:
    tags, tag_problems = parse_tags(cell.tags, cell.index)
    problems.extend(tag_problems)
    prepared = PreparedCell(cell=cell, tags=tags)
    if tags.role in ("skip", "injected-parameters"):
        return prepared
    prepared.clean = clean_cell(cell.source, cell.index)
    problems.extend(prepared.clean.problems)
    # A cell magic that failed leaves no code: what it would have defined is unknown.
    prepared.broken = bool(prepared.clean.problems) and not prepared.clean.code
    if tags.role == "parameters":
        return prepared
    try:
        prepared.analysis = analyze_cell(prepared.clean.code, cell.index, prepared.clean.cell_line)
    except SyntaxError as exc:
        line = prepared.clean.cell_line(exc.lineno)
        problems.append(Problem("syntax_error", syntax_message(exc), cell=cell.index, line=line))
        prepared.broken = True
    except (RecursionError, MemoryError):
        message = "the code is nested too deeply for Python to compile; split the long expression"
        problems.append(Problem("syntax_error", message, cell=cell.index))
        prepared.broken = True
    return prepared


@dataclass
class Layout:
    drafts: list[Draft] = field(default_factory=list)
    prelude_cells: list[PreparedCell] = field(default_factory=list)  # imports cells, then functions cells
    parameter_cells: list[PreparedCell] = field(default_factory=list)
    definition_cells: list[PreparedCell] = field(default_factory=list)  # defs-only cells outside any step


def lay_out(
    prepared: list[PreparedCell], selected: set[int] | None, problems: list[Problem], warnings: list[Problem]
) -> Layout:
    layout = Layout()
    imports, functions = [], []
    body: list[PreparedCell] = []
    for cell in prepared:
        role = cell.tags.role
        if role == "skip":
            continue
        if role == "injected-parameters":
            warnings.append(
                Problem(
                    "injected_parameters",
                    "papermill's injected-parameters cell is ignored: it holds one run's values; "
                    "the defaults come from the `parameters` cell",
                    cell=cell.index,
                )
            )
        elif role == "imports":
            imports.append(cell)
        elif role == "functions":
            functions.append(cell)
        elif role == "parameters":
            layout.parameter_cells.append(cell)
        else:
            body.append(cell)
    layout.prelude_cells = imports + functions
    tagged = any(cell.tags.step for cell in body)

    def chosen(cell: PreparedCell) -> bool:
        return selected is None or cell.index in selected

    if tagged:
        pre: list[PreparedCell] = []
        current: Draft | None = None
        for cell in body:
            if cell.tags.step:
                current = Draft(name=cell.tags.step, head=cell)
                layout.drafts.append(current)
            elif cell.tags.step_level:
                problems.append(
                    Problem(
                        "bad_tag",
                        f"tag '{cell.tags.step_level[0]}' belongs on the cell that starts a step (step:<name>); "
                        "move it there",
                        cell=cell.index,
                    )
                )
            if current is None:
                pre.append(cell)
            elif chosen(cell):
                current.cells.append(cell)
        pre = [cell for cell in pre if chosen(cell)]
        if all(cell.analysis is not None and cell.analysis.only_definitions for cell in pre):
            layout.definition_cells.extend(pre)
        else:
            layout.drafts.insert(0, Draft(name="start", head=None, cells=pre))
    else:
        for cell in body:
            if not chosen(cell):
                continue
            only_definitions = cell.analysis is not None and cell.analysis.only_definitions
            if only_definitions and not cell.tags.written:
                layout.definition_cells.append(cell)
            else:
                layout.drafts.append(Draft(name=f"step_{len(layout.drafts) + 1}", head=cell, cells=[cell]))
    layout.drafts = [draft for draft in layout.drafts if draft.cells]
    return layout


def collect_parameters(cells: list[PreparedCell], problems: list[Problem], warnings: list[Problem]) -> list[Parameter]:
    found: dict[str, Parameter] = {}
    for cell in cells:
        if cell.clean is None or cell.clean.problems:
            continue
        params, cell_problems, cell_warnings = parse_parameters(cell.clean.code, cell.index, cell.clean.cell_line)
        problems.extend(cell_problems)
        warnings.extend(cell_warnings)
        for param in params:
            if param.name in found:
                warnings.append(
                    Problem(
                        "duplicate_parameter",
                        f"parameter '{param.name}' is assigned in more than one parameters cell; the last value counts",
                        cell=cell.index,
                    )
                )
            found[param.name] = param
    return list(found.values())
