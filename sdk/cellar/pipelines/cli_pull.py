"""`cellar pull <pipeline>/<run> --step <name> [--index i] [-o file.ipynb]`: write a notebook that
reproduces one task of a platform run (see cellar/pipelines/pull.py).

Exit status: 0 when the notebook is written, 1 when the server refuses (no such run or task, no
access), 2 for a wrong command line or missing credentials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cellar.client import CellarAPIError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "pull",
        help="write a notebook that reproduces a task of a run (its inputs, parameters and code)",
        description="Write a notebook that loads a task's exact inputs and runs its step's code, cell by cell.",
    )
    parser.add_argument("run", help="the run: pipeline/number, e.g. churn/12")
    parser.add_argument("--step", required=True, help="the step's name")
    parser.add_argument("--index", type=int, help="the foreach element (0-based), for a step inside a foreach")
    parser.add_argument("-o", "--output", type=Path, help="where to write it (default: <pipeline>-<run>-<step>.ipynb)")
    parser.add_argument("--force", action="store_true", help="overwrite the output file")
    parser.add_argument("--team", help="the team, when the token reaches several (default: $CELLAR_TEAM)")
    parser.add_argument("--url", default=argparse.SUPPRESS, help="server URL (default: $CELLAR_URL)")
    parser.add_argument("--token", default=argparse.SUPPRESS, help="API token (default: $CELLAR_TOKEN)")


def run(args: argparse.Namespace) -> int:
    from cellar.pipelines.load_task import TaskNotFound, parse_run, reader_for
    from cellar.pipelines.pull import default_path, write_notebook
    from cellar.tracking.errors import ConfigurationError

    try:
        pipeline, number = parse_run(args.run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        reader = reader_for(getattr(args, "url", None), getattr(args, "token", None), args.team)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        task = reader.load(pipeline, number, args.step, args.index)
    except TaskNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except CellarAPIError as exc:
        print(f"error: run {pipeline}/{number}: {exc.message} ({exc.code}, HTTP {exc.status})", file=sys.stderr)
        return 1
    path = args.output or Path(default_path(task))
    if path.exists() and not args.force:
        print(f"error: {path} exists; pass --force to overwrite it or -o to write elsewhere", file=sys.stderr)
        return 2
    write_notebook(task, path)
    where = task.step if task.index is None else f"{task.step}[{task.index}]"
    print(f"Wrote {path}: task {where} of {pipeline} #{number} ({task.state}); open it and run it cell by cell.")
    return 0
