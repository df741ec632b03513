"""`cellar compile notebook.ipynb`: what the notebook would become, without sending anything.

Prints the steps (cells, inputs, outputs, upstream, parameters, resources), the DAG as
`a -> b` lines, warnings and errors (each `cell N, step 'x', line L: message`) and the
version id the pipeline would have. Exit 0 when it compiles, 1 on errors, 2 on bad usage.

Resources are checked against the local machine: a `cpu` pool with this machine's cores and
memory, and a `gpu` pool only when `--pool-gpu N` says the machine has GPUs. `--pool-cpu` and
`--pool-memory` override what the machine reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cellar.pipelines.compiler import CompileResult, compile_notebook
from cellar.pipelines.errors import CompileError, Problem
from cellar.pipelines.notebook import parse_cell_selection
from cellar.pipelines.spec import PipelineSpec, PoolOffer, Step
from cellar.pipelines.tags import parse_size


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "compile",
        help="compile a notebook into a pipeline and print its steps, DAG and errors (sends nothing)",
        description="Compile a notebook into a pipeline spec and print its steps, DAG, warnings, errors and the "
        "version id it would have. Nothing is sent to a server.",
    )
    parser.add_argument("notebook", help="the .ipynb file")
    parser.add_argument("--cells", help="only these cells (0-based, all cells counted), e.g. 0,2,5-9")
    parser.add_argument("--json", action="store_true", help="print the spec (and warnings, errors) as JSON")
    parser.add_argument("--pool-cpu", type=float, help="CPU cores the local pool offers (default: this machine's)")
    parser.add_argument("--pool-memory", help="memory the local pool offers, e.g. 16Gi (default: this machine's)")
    parser.add_argument("--pool-gpu", type=int, default=0, help="GPUs of a local `gpu` pool (default: no gpu pool)")


def total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def local_pools(cpu: float | None = None, memory: int | None = None, gpu: int = 0) -> dict[str, PoolOffer]:
    cpu = cpu if cpu is not None else float(os.cpu_count() or 1)
    memory = memory if memory is not None else total_memory()
    pools = {"cpu": PoolOffer(name="cpu", cpu=cpu, memory=memory)}
    if gpu > 0:
        pools["gpu"] = PoolOffer(name="gpu", cpu=cpu, memory=memory, gpu=gpu)
    return pools


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor:
            return f"{size / factor:g}{unit}"
    return f"{size}B"


def _describe(step: Step, cells: list[int]) -> list[str]:
    res = step.resources
    resources = f"pool {res.pool}, cpu {res.cpu:g}"
    if res.memory is not None:
        resources += f", memory {_size(res.memory)}"
    if res.gpu:
        resources += f", gpu {res.gpu}"
    lines = [f"step {step.name} (cells {', '.join(map(str, cells))})"]
    if step.inputs:
        lines.append("  inputs:     " + ", ".join(f"{name} <- {src}" for name, src in step.inputs.items()))
    if step.outputs:
        lines.append("  outputs:    " + ", ".join(step.outputs))
    if step.upstream:
        lines.append("  upstream:   " + ", ".join(step.upstream))
    if step.parameters:
        lines.append("  parameters: " + ", ".join(step.parameters))
    lines.append("  resources:  " + resources)
    how = []
    if step.retry:
        how.append(f"retry {step.retry}")
    if step.timeout:
        how.append(f"timeout {step.timeout}s")
    if not step.cache:
        how.append("cache off")
    if step.foreach:
        how.append(f"foreach {step.foreach.iterable} as {step.foreach.item}")
    elif step.branch_of:
        how.append(f"branch of {step.branch_of}")
    if step.join:
        how.append("join")
    if how:
        lines.append("  runs:       " + ", ".join(how))
    return lines


def dag_lines(spec: PipelineSpec) -> list[str]:
    edges = spec.edges()
    linked = {name for edge in edges for name in edge}
    lines = [f"{up} -> {down}" for up, down in edges]
    lines += [step.name for step in spec.steps if step.name not in linked]
    return lines


def render(result: CompileResult) -> str:
    spec = result.spec
    out = []
    for step in spec.steps:
        out.extend(_describe(step, spec.source[step.name].cells))
    if spec.parameters:
        out.append("parameters: " + ", ".join(f"{p.name}={json.dumps(p.default)} ({p.type})" for p in spec.parameters))
    out.append("DAG:")
    out.extend(f"  {line}" for line in dag_lines(spec))
    if result.warnings:
        out.append("warnings:")
        out.extend(f"  {w}" for w in result.warnings)
    out.append(f"version {spec.content_hash()}")
    return "\n".join(out)


def _problems(problems: list[Problem]) -> list[dict]:
    return [p.to_dict() for p in problems]


def run(args: argparse.Namespace) -> int:
    try:
        cells = parse_cell_selection(args.cells) if args.cells else None
        memory = parse_size(args.pool_memory) if args.pool_memory else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pools = local_pools(args.pool_cpu, memory, args.pool_gpu)
    try:
        result = compile_notebook(args.notebook, cells=cells, pools=pools)
    except CompileError as exc:
        if args.json:
            print(json.dumps({"errors": _problems(exc.problems), "warnings": []}, indent=2))
        else:
            print(f"{args.notebook}: {len(exc.problems)} error(s)", file=sys.stderr)
            for problem in exc.problems:
                print(f"  error: {problem}", file=sys.stderr)
        return 1
    if args.json:
        data = result.spec.to_dict()
        data["warnings"] = _problems(result.warnings)
        data["errors"] = []
        print(json.dumps(data, indent=2))
    else:
        print(render(result))
    return 0
