"""The compiler's checks on assembled steps: names, foreach/join regions, `prev:` edges and
cycles, resources against pools, serializability of outputs, and the modest warnings.

Every check appends `Problem`s instead of raising, so one compile reports everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cellar.pipelines.errors import Problem
from cellar.pipelines.spec import Parameter, PoolOffer, Resources

if TYPE_CHECKING:  # the compiler imports this module; only the types flow back
    from cellar.pipelines.analysis import Definition
    from cellar.pipelines.dataflow import In, StepFlow
    from cellar.pipelines.layout import Draft, PreparedCell

SERIALIZE_HINT = "recreate it in the step that uses it, or in a `functions` cell"
LARGE_OUTPUT = 1024**3  # bytes: an output this big is worth a warning


def _mib(size: int) -> str:
    return f"{size / 1024**2:,.0f} MiB"


def check_names(drafts: list[Draft], problems: list[Problem]) -> None:
    seen: dict[str, Draft] = {}
    for draft in drafts:
        if draft.name in seen:
            first = seen[draft.name]
            problems.append(
                Problem(
                    "duplicate_step",
                    f"step '{draft.name}' is already started in cell {first.cell}; give each step its own name",
                    cell=draft.cell,
                    step=draft.name,
                )
            )
        else:
            seen[draft.name] = draft


def assign_branches(drafts: list[Draft], problems: list[Problem]) -> None:
    """Set `branch_of` on a foreach step and the steps after it up to its join."""
    open_foreach: Draft | None = None
    for draft in drafts:
        tags = draft.tags
        if tags.foreach and tags.join:
            problems.append(
                Problem(
                    "bad_tag",
                    "a step cannot both start a foreach and join one; put the join in a later step",
                    cell=draft.cell,
                    step=draft.name,
                )
            )
            continue
        if tags.foreach:
            if open_foreach is not None:
                problems.append(
                    Problem(
                        "nested_foreach",
                        f"foreach inside the foreach opened by step '{open_foreach.name}' (cell {open_foreach.cell}); "
                        "foreach cannot be nested: add a `join` step before this one",
                        cell=draft.cell,
                        step=draft.name,
                    )
                )
                draft.branch_of = open_foreach.name
                continue
            open_foreach = draft
            draft.branch_of = draft.name
        elif tags.join:
            if open_foreach is None:
                problems.append(
                    Problem(
                        "join_without_foreach",
                        "this `join` step has no foreach to join: tag an earlier step foreach:<iterable> "
                        "or remove the `join` tag",
                        cell=draft.cell,
                        step=draft.name,
                    )
                )
                continue
            draft.closes = open_foreach.name
            open_foreach = None
        elif open_foreach is not None:
            draft.branch_of = open_foreach.name


def check_prev_and_cycles(drafts: list[Draft], problems: list[Problem]) -> None:
    names = {draft.name for draft in drafts}
    for draft in drafts:
        for prev in draft.tags.prev:
            if prev not in names:
                known = ", ".join(sorted(names)) or "none"
                problems.append(
                    Problem(
                        "unknown_prev",
                        f"prev:{prev} names no step of this pipeline (the steps are: {known})",
                        cell=draft.cell,
                        step=draft.name,
                    )
                )
                draft.upstream.discard(prev)
    if len(names) < len(drafts):
        return  # duplicate step names (reported already) make edges ambiguous
    cycle = find_cycle({draft.name: sorted(draft.upstream) for draft in drafts})
    if cycle:
        first = next(d for d in drafts if d.name == cycle[0])
        problems.append(
            Problem(
                "cycle",
                f"the steps depend on each other in a cycle: {' -> '.join(cycle)}; "
                "remove a prev: tag or move the code that closes the loop",
                cell=first.cell,
                step=first.name,
            )
        )


def find_cycle(upstream: dict[str, list[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a] (edges upstream -> step), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for up in upstream.get(node, ()):
            if up not in upstream:
                continue
            if state.get(up) == 1:
                loop = path[path.index(up) :] + [up]
                return list(reversed(loop))
            if up not in state:
                found = visit(up)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in upstream:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def step_resources(
    drafts: list[Draft], pools: dict[str, PoolOffer] | None, problems: list[Problem]
) -> dict[str, Resources]:
    result = {}
    for draft in drafts:
        tags = draft.tags
        gpu = tags.gpu or 0
        resources = Resources(
            pool=tags.pool or ("gpu" if gpu > 0 else "cpu"),
            cpu=tags.cpu if tags.cpu is not None else 1.0,
            memory=tags.memory,
            gpu=gpu,
        )
        result[draft.name] = resources
        if pools is None:
            continue
        offer = pools.get(resources.pool)
        if offer is None:
            known = ", ".join(sorted(pools)) or "none"
            problems.append(
                Problem(
                    "unknown_pool",
                    f"step runs on pool '{resources.pool}', which does not exist (the pools are: {known}); "
                    "tag the step pool:<name> with one of them",
                    cell=draft.cell,
                    step=draft.name,
                )
            )
            continue
        if resources.gpu == 0 and offer.gpu > 0:
            # A GPU pool's workers are scarce and costly: a step that does not ask for a GPU never takes one.
            problems.append(
                Problem(
                    "gpu_pool_needs_gpu_tag",
                    f"pool '{resources.pool}' is a GPU pool and this step asks for no GPU; "
                    "tag it gpu:<n> or run it on a CPU pool",
                    cell=draft.cell,
                    step=draft.name,
                )
            )
            continue
        short = []
        if resources.cpu > offer.cpu:
            short.append(f"{resources.cpu:g} CPU cores (it offers {offer.cpu:g})")
        if resources.memory is not None and offer.memory is not None and resources.memory > offer.memory:
            short.append(f"{_mib(resources.memory)} of memory (it offers {_mib(offer.memory)})")
        if resources.gpu > offer.gpu:
            short.append(f"{resources.gpu} GPU(s) (it offers {offer.gpu})")
        if short:
            problems.append(
                Problem(
                    "resource_unavailable",
                    f"pool '{resources.pool}' cannot give this step {' and '.join(short)}; "
                    "ask for less or choose another pool with pool:<name>",
                    cell=draft.cell,
                    step=draft.name,
                )
            )
    return result


def check_serializable(
    drafts: list[Draft],
    kernel_values: dict[str, dict[str, Any]] | None,
    problems: list[Problem],
    warnings: list[Problem],
) -> None:
    kernel_values = kernel_values or {}
    for draft in drafts:
        for name in sorted(draft.outputs):
            cell, line = draft.flow.produced.get(name, (draft.cell, 0))
            line = line or None
            readers = "a later step"
            value = kernel_values.get(name)
            if value is not None and not value.get("ok", True):
                kind = value.get("type") or "value"
                error = value.get("error") or "it cannot be serialized"
                problems.append(
                    Problem(
                        "unserializable",
                        f"'{name}' ({kind}) is passed to {readers} but cannot be serialized: {error}; {SERIALIZE_HINT}",
                        cell=cell,
                        step=draft.name,
                        line=line,
                    )
                )
                continue
            if value is not None:
                size = value.get("size")
                if isinstance(size, int) and size > LARGE_OUTPUT:
                    warnings.append(
                        Problem(
                            "large_output",
                            f"'{name}' is {_mib(size)} serialized; every run stores it and each reader loads it",
                            cell=cell,
                            step=draft.name,
                            line=line,
                        )
                    )
                continue
            risk = draft.flow.risks.get(name)
            if risk:
                problems.append(
                    Problem(
                        "unserializable",
                        f"'{name}' is {risk}, which cannot be passed to {readers}; {SERIALIZE_HINT}",
                        cell=cell,
                        step=draft.name,
                        line=line,
                    )
                )


def add_warnings(drafts: list[Draft], parameters: list[Parameter], warnings: list[Problem]) -> None:
    depended = {up for draft in drafts for up in draft.upstream}
    names = {p.name for p in parameters}
    for index, draft in enumerate(drafts):
        for name in sorted(names & set(draft.flow.produced)):
            cell, line = draft.flow.produced[name]
            warnings.append(
                Problem(
                    "shadows_parameter",
                    f"this step assigns '{name}', which is also a parameter: later steps read this step's value, "
                    "so a run's value for the parameter does not reach them",
                    cell=cell,
                    step=draft.name,
                    line=line or None,
                )
            )
        last = index == len(drafts) - 1
        if not last and not draft.outputs and draft.name not in depended and not draft.branch_of:
            warnings.append(
                Problem(
                    "unused_step",
                    "nothing this step makes is read by a later step and no step depends on it (prev:); "
                    "it runs only for its side effects",
                    cell=draft.cell,
                    step=draft.name,
                )
            )


def branch_output_problem(draft: Draft, producer: Draft, name: str, use: In) -> Problem:
    return Problem(
        "branch_output",
        f"'{name}' is made by step '{producer.name}' once per element of the foreach opened by step "
        f"'{producer.branch_of}'; read it in that foreach's `join` step, where it arrives as a list, "
        "and pass on what you need from there",
        cell=use.cell,
        step=draft.name,
        line=use.line,
    )


def undefined_problem(
    draft: Draft, use: In, drafts: list[Draft], prepared: list[PreparedCell], selected: set[int] | None
) -> Problem:
    name = use.name
    via = f" (used by '{use.via}')" if use.via else ""
    later = next((d for d in drafts if d.first > draft.first and name in d.flow.produced), None)
    mine = draft.flow.produced.get(name)
    if name == "display":
        hint = "`display` exists only in IPython; add `from IPython.display import display` (or use print)"
    elif name == "get_ipython":
        hint = "`get_ipython` exists only in IPython; a step runs as plain Python, so do it in Python"
    elif mine is not None:
        hint = f"this step assigns it only later (cell {mine[0]}, line {mine[1]}); assign it before it is used"
    elif later is not None:
        cell = later.flow.produced[name][0]
        hint = f"it is first assigned in cell {cell} (step '{later.name}'), after this step; reorder the cells"
    else:
        hint = "no earlier cell assigns, imports or defines it, and it is not a parameter"
        for cell in prepared:
            if cell.index >= draft.first and cell.tags.role != "skip":
                continue
            if name not in cell.cell.source:
                continue
            if cell.tags.role == "skip":
                hint = f"it is assigned in cell {cell.index}, which is tagged `skip`"
            elif selected is not None and cell.index not in selected:
                hint = f"it is assigned in cell {cell.index}, which is not among the selected cells; select it too"
            else:
                continue
            break
    return Problem(
        "undefined_name", f"name '{name}'{via} is not defined: {hint}", cell=use.cell, step=draft.name, line=use.line
    )


def nested_import_problem(draft: Draft, definition: Definition, flow: StepFlow) -> Problem:
    return Problem(
        "undefined_name",
        f"'{definition.name}' is imported inside a block in cell {definition.cell} (line {definition.line}), "
        "so other steps do not get it; import it at the top level of a cell (or in an `imports` cell)",
        cell=draft.cell,
        step=draft.name,
    )
