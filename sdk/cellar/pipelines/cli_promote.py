"""`cellar promote notebook.ipynb --pipeline NAME`: make the notebook a version of a pipeline.

The notebook is compiled here first, with this interpreter's environment, so a problem is
reported at once and offline, exactly as the server would report it (each problem as
`cell N, step 'x', line L: message`). Then the notebook (outputs stripped) and this
interpreter's environment lock go to the server named by CELLAR_URL / CELLAR_TOKEN (or
--url / --token; CELLAR_TEAM or --team when the token reaches several teams), which compiles
it again against its pools and returns the version. The version id is printed on stdout
(and nothing else, so `id=$(cellar promote …)` works); what happened goes to stderr.

`--run` starts a run of the version (`-p key=value` overrides parameters) and `--wait`
follows it to its end: exit 0 when it succeeded, 1 otherwise.

Exit codes: 0 done; 1 the notebook, the server or the run said no; 2 bad usage, or the
server cannot be reached or cannot run pipelines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

from cellar.client import CellarAPIError, Client
from cellar.pipelines.compiler import compile_notebook
from cellar.pipelines.errors import CompileError, Problem
from cellar.pipelines.notebook import parse_cell_selection
from cellar.pipelines.spec import Parameter, PipelineSpec

TERMINAL_STATES = {"succeeded", "failed", "cancelled", "upstream_failed"}
# Polling gives up after the server has been unreachable this long (a restart takes less).
UNREACHABLE_FOR_S = 120.0


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "promote",
        help="make a notebook a new version of a pipeline on the server (prints the version id)",
        description="Compile the notebook locally, send it with this environment's lock to the server and print "
        "the version id. The same content always gives the same id.",
    )
    parser.add_argument("notebook", help="the .ipynb file")
    parser.add_argument("--pipeline", required=True, help="the pipeline's name, like churn-model")
    parser.add_argument("--cells", help="only these cells (0-based, all cells counted), e.g. 0,2,5-9")
    parser.add_argument("--production", action="store_true", help="also make it the production version (team admins)")
    parser.add_argument("--run", action="store_true", help="start a run of the version")
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a run parameter (with --run)"
    )
    parser.add_argument("--wait", action="store_true", help="with --run: follow the run to its end")
    parser.add_argument("--team", help="the team, when the token reaches several (default: $CELLAR_TEAM)")
    # Also accepted after the command; SUPPRESS keeps `cellar --url X promote …` working.
    parser.add_argument("--url", default=argparse.SUPPRESS, help="server URL (default: $CELLAR_URL)")
    parser.add_argument("--token", default=argparse.SUPPRESS, help="API token (default: $CELLAR_TOKEN)")
    parser.add_argument("--poll-interval", type=float, default=2.0, help=argparse.SUPPRESS)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_problems(problems: list[Problem], heading: str) -> None:
    _say(heading)
    for problem in problems:
        _say(f"  {problem}")


def _notebook_for_upload(path: Path) -> dict[str, Any]:
    """The notebook without outputs: they are not part of a pipeline and can be megabytes."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for cell in data.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return data


def _coerce(raw: str, parameter: Parameter) -> Any:
    """A `-p` value as the parameter's type: numbers, booleans and JSON for lists and dicts."""
    kind = parameter.type
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind in ("list", "dict", "none"):
            return json.loads(raw)
    except ValueError:
        raise ValueError(f"parameter '{parameter.name}' is a {kind}; '{raw}' is not") from None
    return raw


def parse_parameters(pairs: list[str], spec: PipelineSpec) -> dict[str, Any]:
    known = {p.name: p for p in spec.parameters}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"'{pair}' is not key=value")
        if key not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise ValueError(f"the notebook has no parameter '{key}' (its parameters: {listing})")
        values[key] = _coerce(raw, known[key])
    return values


def _login(args: argparse.Namespace):
    from cellar.tracking.errors import ConfigurationError
    from cellar.tracking.session import login

    try:
        return login(getattr(args, "url", None), getattr(args, "token", None), args.team)
    except ConfigurationError as exc:
        _say(f"error: {exc}")
        return 2 if "Cannot reach" in str(exc) else 1


def _api_error(exc: CellarAPIError, what: str) -> int:
    problems = (exc.detail or {}).get("problems") if isinstance(exc.detail, dict) else None
    if problems:
        print_problems([Problem(**p) for p in problems], f"error: {exc.message.split(':')[0]}:")
        return 1
    _say(f"error: {what}: {exc.message} ({exc.code}, HTTP {exc.status})")
    return 1


def run(args: argparse.Namespace) -> int:
    if (args.wait or args.param) and not args.run:
        _say("error: --wait and -p need --run")
        return 2
    try:
        cells = parse_cell_selection(args.cells) if args.cells else None
    except ValueError as exc:
        _say(f"error: --cells {args.cells}: {exc}")
        return 2
    path = Path(args.notebook)
    try:
        compiled = compile_notebook(path, cells=cells, notebook_name=path.name)
    except CompileError as exc:
        print_problems(exc.problems, f"error: {path} cannot become a pipeline:")
        return 1
    spec = compiled.spec
    try:
        parameters = parse_parameters(args.param, spec)
    except ValueError as exc:
        _say(f"error: -p: {exc}")
        return 1
    session = _login(args)
    if isinstance(session, int):
        return session
    client = Client(session.url, session.token, timeout=120.0)
    environment = spec.environment
    body = {
        "notebook": _notebook_for_upload(path),
        "cells": cells,
        "environment": {"python": environment.python, "lock": environment.lock, "modules": environment.modules},
        "production": args.production,
        "notebook_name": path.name,
    }
    base = f"teams/{session.team}/pipelines/{args.pipeline}"
    try:
        version = client.post(f"{base}/versions/", json=body)
    except CellarAPIError as exc:
        return _api_error(exc, f"the server refused the promote of {path}")
    except requests.RequestException as exc:
        _say(f"error: cannot reach {client.url}: {exc}")
        return 2
    _report_version(version, spec, session, args)
    print(version["id"], flush=True)
    if not args.run:
        return 0
    return _start_run(client, base, version, parameters, args)


def _report_version(version: dict, spec: PipelineSpec, session, args: argparse.Namespace) -> None:
    name, number, steps = version["pipeline"], version["number"], version["step_count"]
    if version.get("created"):
        _say(f"Created version {number} of pipeline '{name}' ({steps} step{'s' if steps != 1 else ''}).")
    else:
        _say(f"Existing version {number} of pipeline '{name}': the same content was promoted before.")
    for warning in version.get("request_warnings") or []:
        _say(f"warning: {Problem(**warning)}")
    if version["id"] != spec.content_hash():
        _say("note: the server's id differs from this SDK's compile; the server's compiler is another version.")
    if version.get("is_production"):
        _say(f"Production is version {number}.")
    elif args.production:
        _say(f"warning: version {number} is not production; see the pipeline page.")
    _say(f"{session.url}/t/{session.team}/pipelines/{name}/versions/{number}/")


def _start_run(client: Client, base: str, version: dict, parameters: dict, args: argparse.Namespace) -> int:
    try:
        started = client.post(f"{base}/runs/", json={"version": version["id"], "parameters": parameters})
    except CellarAPIError as exc:
        if exc.status in (404, 405):
            _say(
                "error: this server cannot run pipelines yet (it has no pipeline runs API); the version was "
                "promoted, run it locally with `cellar run` meanwhile."
            )
            return 2
        return _api_error(exc, "the server refused to start the run")
    except requests.RequestException as exc:
        _say(f"error: cannot reach {client.url}: {exc}")
        return 2
    run_id = started.get("id") or started.get("run_id")
    _say(f"Started run {run_id} of version {version['number']}.")
    if not args.wait:
        return 0
    return follow_run(client, f"{base}/runs/{run_id}/", started, interval=args.poll_interval)


def _state(body: dict) -> str:
    return str(body.get("state") or body.get("status") or "").lower()


def _progress(body: dict) -> str:
    """`running · 3 succeeded, 1 running, 6 queued` from whatever counts the run reports."""
    counts = body.get("progress") or body.get("tasks")
    line = _state(body) or "unknown"
    if isinstance(counts, dict) and counts:
        line += " · " + ", ".join(f"{v} {k}" for k, v in counts.items() if isinstance(v, int | float))
    return line


def _say_failure(error: object) -> None:
    """The run's first failure as the notebook shows it: step [element], cell, line, exception."""
    if not isinstance(error, dict):
        return
    where = f"step '{error.get('step')}'"
    if error.get("index") is not None:
        where += f" [element {error['index']}]"
    if error.get("cell") is not None:
        where += f", cell {error['cell']}"
    if error.get("line") is not None:
        where += f", line {error['line']}"
    _say(f"error: {where}: {error.get('type', 'Error')}: {error.get('message', '')}")
    if error.get("traceback"):
        _say(str(error["traceback"]).rstrip())


def follow_run(client: Client, path: str, body: dict, *, interval: float = 2.0) -> int:
    """Poll the run until it ends, printing a progress line; 0 when it succeeded, else 1."""
    tty = sys.stderr.isatty()
    shown, unreachable_since = "", None
    try:
        while True:
            line = _progress(body)
            if line != shown:
                if tty:
                    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
                else:
                    _say(line)
                shown = line
            state = _state(body)
            if state in TERMINAL_STATES:
                if tty:
                    print(file=sys.stderr)
                _say(f"Run {body.get('id', '')} {state}.")
                if state != "succeeded":
                    _say_failure(body.get("error"))
                return 0 if state == "succeeded" else 1
            time.sleep(interval)
            try:
                body = client.get(path)
                unreachable_since = None
            except (requests.RequestException, CellarAPIError) as exc:
                if isinstance(exc, CellarAPIError) and exc.status < 500:
                    return _api_error(exc, "following the run")
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > UNREACHABLE_FOR_S:
                    _say(f"error: lost the server while following the run: {exc}")
                    return 2
    except KeyboardInterrupt:
        _say(f"\nStopped following the run; it goes on on the server ({path}).")
        return 130
