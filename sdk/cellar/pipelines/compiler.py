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
* Classes defined in earlier cells travel in the prelude of every later step that has data
  inputs, even if it never names them: its inputs may be their instances, and unpickling
  needs the class.*  A star import (`from m import *`) may provide any name nothing else
  does; it travels to the steps that need such a name.*
* `display` and `get_ipython` are not builtins outside IPython; using them is an undefined
  name whose message says what to do.*

Code: each cell's code is normalised (magics removed, CRLF -> LF, lines right-stripped,
leading/trailing blank lines dropped, the cell dedented) and a step's cells are joined by one
blank line. A cell left empty is not listed in the step's source map.*

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
from cellar.pipelines.analysis import BUILTINS, Definition
from cellar.pipelines.dataflow import walk_step
from cellar.pipelines.environment import current_environment
from cellar.pipelines.errors import CompileError, Problem
from cellar.pipelines.layout import Draft, Layout, PreparedCell, collect_parameters, lay_out, prepare_cell
from cellar.pipelines.notebook import load_notebook
from cellar.pipelines.spec import Environment, PipelineSpec, PoolOffer, Step, StepSource


@dataclass
class CompileResult:
    spec: PipelineSpec
    warnings: list[Problem] = field(default_factory=list)


def _with_step(problem: Problem, step_of: dict[int, str]) -> Problem:
    if problem.step or problem.cell not in step_of:
        return problem
    return replace(problem, step=step_of[problem.cell])


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
    prepared = [prepare_cell(cell, problems) for cell in notebook.cells]
    layout = lay_out(prepared, selected, problems, warnings)
    parameters = collect_parameters(layout.parameter_cells, problems, warnings)
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


def _resolve(
    drafts: list[Draft],
    layout: Layout,
    parameters: set[str],
    prepared: list[PreparedCell],
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
            elif name in BUILTINS or maybe_in_broken(name, last_cell) or flow.star:
                continue
            elif (star := resolve("*")) is not None:
                # A star import in an earlier cell may provide it: carry the import.
                if star not in flow.used:
                    flow.used.append(star)
                    flow.modules |= star.modules
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


def _prelude(prelude_cells: list[PreparedCell], used: list[Definition]) -> str:
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


def _code(draft: Draft) -> tuple[str, list[int], list[int], list[list[int]]]:
    lines: list[str] = []
    cells, first_lines, cell_lines = [], [], []
    for cell in draft.cells:
        code = cell.clean.code if cell.clean else ""
        if not code:
            continue
        if lines:
            lines.append("")
        cells.append(cell.index)
        first_lines.append(len(lines) + 1)
        cell_lines.append(list(cell.clean.lines))
        lines.extend(code.split("\n"))
    if not cells:
        cells, first_lines, cell_lines = [draft.cell], [1], []
    return "\n".join(lines), cells, first_lines, cell_lines


def _step(draft: Draft, resources) -> Step:
    tags = draft.tags
    code, _, _, _ = _code(draft)
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
        concurrency=tags.concurrency,
        tags=list(tags.written),
    )


def _source(draft: Draft) -> StepSource:
    _, cells, first_lines, cell_lines = _code(draft)
    return StepSource(cells=cells, first_lines=first_lines, cell_lines=cell_lines)
