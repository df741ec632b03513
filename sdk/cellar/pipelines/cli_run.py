"""`cellar run notebook.ipynb [-p key=value ...]`: compile a notebook and run its pipeline here.

Exit status: 0 when every step succeeded, 1 when a step failed (its error is printed: step,
cell, line, exception and the traceback of the user's code), 2 when the notebook does not
compile or the command line is wrong (every problem is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cellar.pipelines.errors import CompileError
from cellar.pipelines.runner import LocalRun, ParameterError, parse_assignments, run_pipeline
from cellar.pipelines.runner.plan import Task
from cellar.pipelines.spec import PipelineSpec


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "run",
        help="run a notebook's pipeline on this machine (no platform needed)",
        description="Compile the notebook exactly as `cellar promote` would and run it in a local process pool.",
    )
    parser.add_argument("notebook", type=Path, help="the .ipynb file")
    parser.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a parameter (repeatable); the value is read as the parameter's type (lists and dicts as JSON)",
    )
    parser.add_argument("--cells", help="only these cells (0-based, all cells counted), e.g. 0,2,5-9")
    parser.add_argument("--workers", type=int, help="steps run at once (default: min(4, CPUs))")
    parser.add_argument(
        "--dir",
        type=Path,
        help="where artifacts, cache and run records go (default: $CELLAR_LOCAL_DIR or ~/.cellar/local)",
    )
    parser.add_argument("--no-cache", action="store_true", help="run every step even when a cached result exists")
    parser.add_argument(
        "--keep-going", action="store_true", help="after a failure, still run what does not depend on it"
    )


def run(args: argparse.Namespace) -> int:
    path: Path = args.notebook
    if not path.is_file():
        print(f"error: no notebook at {path}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    # Imported here: `cellar` loads every command's module at start, and these pull in nbformat/pyflakes.
    from cellar.pipelines.compiler import compile_notebook
    from cellar.pipelines.notebook import parse_cell_selection

    try:
        cells = parse_cell_selection(args.cells) if args.cells else None
    except ValueError as exc:
        print(f"error: --cells {args.cells!r}: {exc} (write indices and ranges, e.g. 0,2,5-9)", file=sys.stderr)
        return 2
    try:
        overrides = parse_assignments(args.params)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    try:
        result = compile_notebook(path, cells=cells, notebook_name=path.name)
    except CompileError as exc:
        print(
            f"error: {path} does not compile ({len(exc.problems)} problem{'s' * (len(exc.problems) != 1)}):",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  {problem} [{problem.code}]", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    spec = result.spec
    print(f"pipeline {path.name}: {len(spec.steps)} steps, version {spec.content_hash()}", flush=True)
    try:
        local = run_pipeline(
            spec,
            overrides,
            directory=args.dir,
            workers=args.workers,
            progress=True,
            cache=not args.no_cache,
            keep_going=args.keep_going,
        )
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the run is recorded as cancelled", file=sys.stderr)
        # The record is written and the workers are stopped. Leave now: a normal exit joins the
        # process pool's manager thread (and any non-daemon thread), which can wait forever on a
        # queue that a terminated worker left locked: Ctrl-C must end the command.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    print_summary(spec, local)
    if local.ok:
        return 0
    print_failure(local)
    return 1


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _states(tasks: list[Task]) -> str:
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    if len(tasks) == 1:
        return tasks[0].state
    return ", ".join(f"{n} {state}" for state, n in counts.items()) or "0 tasks"


def print_summary(spec: PipelineSpec, local: LocalRun) -> None:
    print(f"run {local.id}: {local.state} in {local.duration:.1f}s ({local.directory})")
    rows = []
    for step in spec.steps:
        tasks = [t for t in local.tasks if t.step == step.name and t.kind == "step"]
        if step.branch_of is not None:
            label, states = f"x{len(tasks)}", _states(tasks) if tasks else "not run"
        else:
            label, states = "", _states(tasks)
        took = sum(t.duration or 0.0 for t in tasks)
        outputs = ""
        if len(tasks) == 1 and tasks[0].outputs:
            parts = [f"{n} ({r.serializer}, {human_size(r.size)})" for n, r in sorted(tasks[0].outputs.items())]
            outputs = "  -> " + ", ".join(parts)
        rows.append((step.name, label, states, f"{took:.1f}s", outputs))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for name, label, states, took, outputs in rows:
        print(
            f"  {name:<{widths[0]}} {label:>{widths[1]}}  {states:<{widths[2]}}  {took:>{widths[3]}}{outputs}".rstrip()
        )


def print_failure(local: LocalRun) -> None:
    error = local.error
    if error is None:
        print("error: the run did not finish", file=sys.stderr)
        return
    failed = next((t for t in local.tasks if t.state == "failed" and t.step == error.step), None)
    label = failed.label if failed is not None else error.step
    location = error.location()
    print(f"\nerror: step '{label}' failed" + (f" at {location}" if location else ""), file=sys.stderr)
    print(f"  {error.exc_type}: {error.message}", file=sys.stderr)
    text = error.format_traceback()
    if text:
        print("\n" + text, file=sys.stderr)
    if failed is not None:
        for stream in ("stdout", "stderr"):
            log = local.log(failed.step, failed.index, stream, kind=failed.kind).strip()
            if log:
                tail = "\n".join("  " + line for line in log.splitlines()[-10:])
                print(f"\nthe step's last {stream} lines:\n{tail}", file=sys.stderr)
    print(f"\nrun record: {local.directory / 'run.json'}", file=sys.stderr)
