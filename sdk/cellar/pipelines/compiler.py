"""Notebook -> canonical pipeline spec: `compile_notebook`.

What a data scientist can expect (decisions where the issue is silent are marked *):

Cells and steps
* Only code cells count; markdown and raw cells are ignored, `skip` cells are excluded (their
  magics and syntax are not even looked at). Problems name cells 0-based over all cells.
* `cells=[...]` restricts the pipeline to those cells; `imports`, `functions` and `parameters`
  cells always apply. A step whose `step:` cell is not selected but some of whose cells are
  keeps its name and tags.*  Definitions in unselected cells are not available (the error says
  which cell defines the name).*
* Untagged cells join the step above. Untagged cells before the first `step:` cell contribute
  definitions only, if they hold nothing but imports, defs, classes, docstrings and `pass`;
  otherwise they form a step named `start`.
* With no `step:` tags at all, each selected code cell is a step `step_1`, `step_2`, ...,
  numbered over the cells that become steps. A cell that holds only definitions (or nothing)
  is not a step* unless it carries a tag such as `gpu:1`; its imports and defs are available
  to every later step.

Data
* See dataflow.py and analysis.py. An input is resolved to the nearest preceding step that
  produces it; a parameter is used only when no earlier step assigns the name. Imports,
  defs and classes are definitions, carried in the prelude of the steps that use them
  (imports first, then defs/classes, notebook order), never data. A definition's decorators
  and default values run in the prelude, before inputs are loaded: they may use parameters
  and other definitions, not data.*
* `display` is not a builtin outside IPython; using it is an undefined name whose message
  says to import it from IPython.display.*

foreach / join
* `foreach:<iterable>[:<item>]`: the iterable must come from an earlier step or be a
  parameter. The foreach step and each step after it up to the `join` step run once per
  element (`branch_of`); the item is bound in the foreach step, and later branch steps read
  it (or anything a branch step made) as an ordinary input from that branch. The join step
  receives every input produced by a branch step as a list in element order; no other step
  after the join may read a branch step's output (`branch_output`*). A foreach without a join
  runs to the end of the notebook.* No nested foreach.

Resources: pool `gpu` when gpu > 0, else `cpu`; cpu defaults to 1 core. Checked against
`pools` when given.
Serializability: with `kernel_values`, each output the kernel reports not ok is an error;
outputs the kernel did not report* (and every output without a kernel) are checked
statically (an open file, socket, connection, thread or lock, generator or lambda).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from cellar.pipelines import checks
from cellar.pipelines.analysis import BUILTINS, CellAnalysis, Definition, analyze_cell
from cellar.pipelines.dataflow import StepFlow, walk_step
from cellar.pipelines.environment import current_environment
from cellar.pipelines.errors import CompileError, Problem
from cellar.pipelines.magics import CleanCell, clean_cell
from cellar.pipelines.notebook import Cell, load_notebook
from cellar.pipelines.parameters_cell import parse_parameters
from cellar.pipelines.spec import Environment, Parameter, PipelineSpec, PoolOffer, Step, StepSource
from cellar.pipelines.tags import CellTags, parse_tags


@dataclass
class CompileResult:
    spec: PipelineSpec
    warnings: list[Problem] = field(default_factory=list)


@dataclass(eq=False)
class _Cell:
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
    head: _Cell | None  # the cell whose tags configure the step
    cells: list[_Cell] = field(default_factory=list)
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


def _prepare(cell: Cell, problems: list[Problem]) -> _Cell:
    tags, tag_problems = parse_tags(cell.tags, cell.index)
    problems.extend(tag_problems)
    prepared = _Cell(cell=cell, tags=tags)
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
        problems.append(Problem("syntax_error", _syntax_message(exc), cell=cell.index, line=line))
        prepared.broken = True
    return prepared


def _with_step(problem: Problem, step_of: dict[int, str]) -> Problem:
    if problem.step or problem.cell not in step_of:
        return problem
    return replace(problem, step=step_of[problem.cell])


def _syntax_message(exc: SyntaxError) -> str:
    text = (exc.text or "").strip()
    shown = f": {text}" if text else ""
    return f"syntax error ({exc.msg}){shown}; fix the code or tag the cell `skip`"


def compile_notebook(
    source: Any,
    *,
    cells: Iterable[int] | None = None,
    pools: dict[str, PoolOffer] | None = None,
    environment: Environment | None = None,
    kernel_values: dict[str, dict[str, Any]] | None = None,
    notebook_name: str = "",
) -> CompileResult:
    """Compile a notebook (path, JSON text, dict or nbformat node) into a pipeline spec.

    Raises CompileError listing every problem found (each names cell, step and line)."""
    notebook = load_notebook(source, name=notebook_name)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    selected: set[int] | None = None
    if cells is not None:
        selected = set(cells)
        missing = sorted(i for i in selected if not 0 <= i < notebook.total_cells)
        if missing:
            problems.append(
                Problem(
                    "bad_notebook",
                    f"selected cell(s) {', '.join(map(str, missing))} do not exist: the notebook has "
                    f"{notebook.total_cells} cells, numbered from 0",
                )
            )
    prepared = [_prepare(cell, problems) for cell in notebook.cells]
    layout = _layout(prepared, selected, problems, warnings)
    parameters = _parameters(layout.parameter_cells, problems, warnings)
    drafts = layout.drafts
    checks.check_names(drafts, problems)
    checks.assign_branches(drafts, problems)
    _resolve(drafts, layout, {p.name for p in parameters}, prepared, selected, problems)
    checks.check_prev_and_cycles(drafts, problems)
    resources = checks.step_resources(drafts, pools, problems)
    checks.check_serializable(drafts, kernel_values, problems, warnings)
    checks.add_warnings(drafts, parameters, warnings)
    if not drafts and not any(p.code != "bad_notebook" for p in problems):
        problems.append(
            Problem(
                "empty_pipeline",
                "the notebook (or the selected cells) has no code to run; add code cells or select other cells",
            )
        )
    # Name the step of every problem that names a cell of one.
    step_of = {cell.index: draft.name for draft in drafts for cell in draft.cells}
    step_of.update({draft.cell: draft.name for draft in drafts})
    problems = [_with_step(p, step_of) for p in problems]
    warnings[:] = [_with_step(p, step_of) for p in warnings]
    if problems:
        raise CompileError(sorted(problems, key=lambda p: (p.cell if p.cell is not None else -1, p.line or 0)))
    modules = sorted({m for d in drafts for m in d.imports})
    steps, source_map = [], {}
    for draft in drafts:
        steps.append(_step(draft, resources[draft.name]))
        source_map[draft.name] = _source(draft)
    spec = PipelineSpec(
        steps=steps,
        parameters=parameters,
        environment=environment if environment is not None else current_environment(modules),
        source=source_map,
        notebook=notebook.name,
    )
    return CompileResult(spec=spec, warnings=warnings)


@dataclass
class _Layout:
    drafts: list[Draft] = field(default_factory=list)
    prelude_cells: list[_Cell] = field(default_factory=list)  # imports cells, then functions cells
    parameter_cells: list[_Cell] = field(default_factory=list)
    definition_cells: list[_Cell] = field(default_factory=list)  # defs-only cells outside any step


def _layout(
    prepared: list[_Cell], selected: set[int] | None, problems: list[Problem], warnings: list[Problem]
) -> _Layout:
    layout = _Layout()
    imports, functions = [], []
    body: list[_Cell] = []
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

    def chosen(cell: _Cell) -> bool:
        return selected is None or cell.index in selected

    if tagged:
        pre: list[_Cell] = []
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


def _parameters(cells: list[_Cell], problems: list[Problem], warnings: list[Problem]) -> list[Parameter]:
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


def _resolve(
    drafts: list[Draft],
    layout: _Layout,
    parameters: set[str],
    prepared: list[_Cell],
    selected: set[int] | None,
    problems: list[Problem],
) -> None:
    """Walk each step in notebook order; bind its ins to producers, parameters or definitions."""
    prelude = [c.analysis for c in layout.prelude_cells if c.analysis is not None]
    by_name: dict[str, list[Definition]] = {}
    for cell in sorted(layout.definition_cells + [c for d in drafts for c in d.cells], key=lambda c: c.index):
        if cell.analysis is None:
            continue
        for event in cell.analysis.events:
            if event.op == "define":
                by_name.setdefault(event.name, []).append(event.definition)
    producers: dict[str, list[tuple[tuple[int, int], Draft]]] = {}
    classes = sorted(
        (d for found in by_name.values() for d in found if d.kind == "class" and d.movable), key=lambda d: d.position
    )

    def classes_before(start: tuple[int, int]) -> list[Definition]:
        return [d for d in classes if d.position < start]

    broken = [c for c in prepared if c.broken and c.tags.role != "skip"]

    def maybe_in_broken(name: str, last_cell: int) -> bool:
        """A cell that does not parse may define `name`: do not call it undefined."""
        pattern = re.compile(rf"\b{re.escape(name)}\b")
        return any(c.index <= last_cell and pattern.search(c.cell.source) for c in broken)

    for draft in drafts:
        start = (draft.first, 0)

        def nearest_data(name: str, start=start) -> tuple[tuple[int, int], Draft] | None:
            found = [item for item in producers.get(name, ()) if item[0] < start]
            return max(found, key=lambda item: item[0]) if found else None

        def resolve(name: str, start=start, nearest_data=nearest_data) -> Definition | None:
            candidates = [d for d in by_name.get(name, ()) if d.position < start]
            if not candidates:
                return None
            best = candidates[-1]
            data = nearest_data(name)
            return best if data is None or best.position > data[0] else None

        foreach = draft.tags.foreach
        initial = {foreach.item} if foreach else set()
        analyses = [c.analysis for c in draft.cells if c.analysis is not None]
        flow = walk_step(analyses, prelude_cells=prelude, initial=initial, resolve=resolve)
        if flow.ins:
            # Its inputs may be instances of classes defined in the notebook: carry them.
            carried = [d for d in classes_before(start) if resolve(d.name) is d]
            if carried:
                flow = walk_step(analyses, prelude_cells=prelude, initial=initial, resolve=resolve, carry=carried)
        draft.flow = flow
        if foreach and foreach.item not in flow.produced:
            flow.produced[foreach.item] = (draft.cell, 0)
        last_cell = draft.cells[-1].index
        if foreach:
            _foreach_iterable(draft, nearest_data, parameters, problems, maybe_in_broken(foreach.iterable, last_cell))
        for name, use in flow.ins.items():
            data = nearest_data(name)
            if data is not None:
                producer = data[1]
                if producer.branch_of and producer.branch_of not in (draft.branch_of, draft.closes):
                    problems.append(checks.branch_output_problem(draft, producer, name, use))
                    continue
                draft.inputs[name] = producer.name
                producer.outputs.add(name)
            elif name in parameters:
                draft.parameters.add(name)
            elif name in BUILTINS or maybe_in_broken(name, last_cell):
                continue
            else:
                problems.append(checks.undefined_problem(draft, use, drafts, prepared, selected))
        for definition in flow.used:
            if not definition.movable:
                problems.append(checks.nested_import_problem(draft, definition, flow))
        draft.upstream = set(draft.inputs.values()) | set(draft.tags.prev)
        draft.prelude = _prelude(layout.prelude_cells, flow.used)
        draft.imports = sorted(m for m in flow.modules if m)
        for name, position in flow.produced.items():
            producers.setdefault(name, []).append((position, draft))


def _foreach_iterable(draft: Draft, nearest_data, parameters: set[str], problems: list[Problem], broken: bool) -> None:
    iterable = draft.tags.foreach.iterable
    data = nearest_data(iterable)
    if data is not None:
        draft.inputs[iterable] = data[1].name
        data[1].outputs.add(iterable)
    elif iterable in parameters:
        draft.parameters.add(iterable)
    elif iterable in draft.flow.produced:
        problems.append(
            Problem(
                "bad_tag",
                f"foreach:{iterable} fans out over '{iterable}', which this step assigns itself; the iterable "
                "must come from an earlier step or be a parameter (move its assignment to the step above)",
                cell=draft.cell,
                step=draft.name,
            )
        )
    elif not broken:
        problems.append(
            Problem(
                "undefined_name",
                f"foreach:{iterable} fans out over '{iterable}', which no earlier step assigns and which is not "
                "a parameter",
                cell=draft.cell,
                step=draft.name,
            )
        )


def _prelude(prelude_cells: list[_Cell], used: list[Definition]) -> str:
    parts: list[str] = []
    seen: set[str] = set()
    for cell in prelude_cells:
        if cell.clean and cell.clean.code and cell.clean.code not in seen:
            seen.add(cell.clean.code)
            parts.append(cell.clean.code)
    movable = [d for d in used if d.movable]
    imports = [d.source for d in sorted(movable, key=lambda d: d.position) if d.kind == "import"]
    imports = [text for text in dict.fromkeys(imports) if text not in seen]
    if imports:
        parts.append("\n".join(imports))
    for definition in sorted(movable, key=lambda d: d.position):
        if definition.kind != "import" and definition.source not in seen:
            seen.add(definition.source)
            parts.append(definition.source)
    return "\n\n".join(parts)


def _code(draft: Draft) -> tuple[str, list[int], list[int]]:
    lines: list[str] = []
    cells, first_lines = [], []
    for cell in draft.cells:
        code = cell.clean.code if cell.clean else ""
        if not code:
            continue
        if lines:
            lines.append("")
        cells.append(cell.index)
        first_lines.append(len(lines) + 1)
        lines.extend(code.split("\n"))
    if not cells:
        cells, first_lines = [draft.cell], [1]
    return "\n".join(lines), cells, first_lines


def _step(draft: Draft, resources) -> Step:
    tags = draft.tags
    code, _, _ = _code(draft)
    return Step(
        name=draft.name,
        code=code,
        prelude=draft.prelude,
        inputs=dict(sorted(draft.inputs.items())),
        outputs=sorted(draft.outputs),
        upstream=sorted(draft.upstream),
        parameters=sorted(draft.parameters),
        imports=draft.imports,
        foreach=tags.foreach,
        branch_of=draft.branch_of,
        join=tags.join,
        resources=resources,
        retry=tags.retry or 0,
        timeout=tags.timeout,
        cache=tags.cache if tags.cache is not None else True,
        tags=list(tags.written),
    )


def _source(draft: Draft) -> StepSource:
    _, cells, first_lines = _code(draft)
    return StepSource(cells=cells, first_lines=first_lines)
