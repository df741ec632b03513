"""One step's data flow: which names it needs from before it, which it produces, and which
definitions from other cells it uses (and so carries in its prelude).

The cells' events (analysis.py) are replayed in order, as the step's process would run
them: first the `imports`/`functions` cells (the start of every prelude), then the step's
cells. A name read before anything in the step bound it is an *in*, unless it resolves to a
definition in an earlier cell (nearest binding in notebook order wins, data or definition);
then the definition joins the prelude and whatever it needs when used (a function's free
variables, transitively) is read at that point. A mutation of a module, function or class is
only a read; a mutation of anything else produces the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cellar.pipelines.analysis import BUILTINS, CellAnalysis, Definition


@dataclass
class In:
    name: str
    cell: int
    line: int | None
    via: str | None = None  # the function whose free variable it is


@dataclass
class StepFlow:
    ins: dict[str, In] = field(default_factory=dict)  # in first-use order
    produced: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (cell, line) last bound
    risks: dict[str, str] = field(default_factory=dict)  # produced name -> why its last value cannot be pickled
    used: list[Definition] = field(default_factory=list)  # definitions from other cells, first use first
    modules: set[str] = field(default_factory=set)
    star: bool = False  # the step (or its prelude) star-imports: any unresolved name may come from there


def walk_step(
    cells: list[CellAnalysis],
    *,
    prelude_cells: list[CellAnalysis] = (),
    initial: set[str] = frozenset(),
    resolve: Callable[[str], Definition | None] = lambda name: None,
    carry: list[Definition] = (),
) -> StepFlow:
    """Replay a step. `carry`: classes from earlier cells that the step gets even if it never
    names them, because its inputs may be their instances (unpickling needs the class)."""
    flow = StepFlow()
    bound: set[str] = set(initial)
    definitions: dict[str, Definition] = {}  # bound names that are definitions (not data)
    prelude_bound: set[str] = set()
    expanded: set[int] = set()
    in_prelude = True
    current_cell = 0

    def expand(definition: Definition, line: int | None) -> None:
        if id(definition) in expanded:
            return
        expanded.add(id(definition))
        flow.modules |= definition.modules
        for name in definition.free:
            read(name, line, via=definition.name)
        for name in sorted(definition.global_writes):
            bind(name, line)
        for name in sorted(definition.mutates):
            mutate(name, line, via=definition.name)

    def read(name: str, line: int | None, via: str | None = None) -> None:
        if name in bound:
            if name in definitions:
                expand(definitions[name], line)
            return
        if name in flow.ins:
            return
        found = resolve(name)
        if found is not None:
            bound.add(name)
            definitions[name] = found
            flow.used.append(found)
            expand(found, line)
            return
        flow.ins[name] = In(name, current_cell, line, via)

    def bind(name: str, line: int | None, risk: str | None = None) -> None:
        bound.add(name)
        definitions.pop(name, None)
        if in_prelude:
            prelude_bound.add(name)
            return
        flow.produced[name] = (current_cell, line or 0)
        if risk:
            flow.risks[name] = risk
        else:
            flow.risks.pop(name, None)

    def mutate(name: str, line: int | None, via: str | None = None) -> None:
        is_definition = name in definitions or (name not in bound and name not in flow.ins and resolve(name))
        read(name, line, via)
        if is_definition or name in definitions or (name in prelude_bound and name not in flow.produced):
            return
        if in_prelude:
            return
        bound.add(name)
        flow.produced[name] = (current_cell, line or 0)  # keeps a known risk: mutating a file is still a file

    def define(definition: Definition) -> None:
        bound.add(definition.name)
        definitions[definition.name] = definition
        flow.produced.pop(definition.name, None)
        flow.risks.pop(definition.name, None)
        if not in_prelude and not definition.movable and definition.kind == "import":
            flow.modules |= definition.modules

    def replay(cell: CellAnalysis) -> None:
        nonlocal current_cell
        current_cell = cell.cell
        flow.modules |= cell.modules
        for event in cell.events:
            if event.op == "read":
                read(event.name, event.line)
            elif event.op == "bind":
                bind(event.name, event.line, event.risk)
            elif event.op == "mutate":
                mutate(event.name, event.line)
            elif event.op == "define":
                define(event.definition)
            elif event.op == "delete":
                read(event.name, event.line)
                bound.discard(event.name)
                flow.produced.pop(event.name, None)
                flow.risks.pop(event.name, None)

    for cell in prelude_cells:
        replay(cell)
    in_prelude = False
    local = {e.name for cell in cells for e in cell.events if e.op == "define"}
    for definition in carry:
        if definition.name in bound or definition.name in local:
            continue
        # Only a class whose statement runs with definitions alone: nothing it needs is data.
        if all(n in bound or n in BUILTINS or resolve(n) is not None for n in definition.immediate):
            bound.add(definition.name)
            definitions[definition.name] = definition
            flow.used.append(definition)
            flow.modules |= definition.modules
            for name in definition.immediate:
                read(name, None, via=definition.name)
    for cell in cells:
        replay(cell)
    flow.star = "*" in bound
    return flow
