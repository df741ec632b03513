"""The `cellar` command: talk to a Cellar server from a terminal or a script."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cellar.client import CellarAPIError, Client

# command -> module with `add_parser(subparsers)` and `run(args) -> exit code`.
PIPELINE_COMMANDS = {
    "compile": "cellar.pipelines.cli_compile",
    "run": "cellar.pipelines.cli_run",
    "promote": "cellar.pipelines.cli_promote",
    "pull": "cellar.pipelines.cli_pull",
    "simulate-traffic": "cellar.abstats.simulate",
}


def _print(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cellar", description="Cellar's command line (uses CELLAR_URL, CELLAR_TOKEN)."
    )
    parser.add_argument("--url", help="server URL (default: $CELLAR_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", help="API token (default: $CELLAR_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("whoami", help="who the token belongs to and its scopes")
    commands.add_parser("teams", help="teams the token can see")
    members = commands.add_parser("members", help="a team's members")
    members.add_argument("team")
    audit = commands.add_parser("audit", help="a team's audit log")
    audit.add_argument("team")
    audit.add_argument("--actor", default="")
    audit.add_argument("--verb", default="")
    sync = commands.add_parser(
        "sync", help="upload offline runs (and batches a run could not send) to the server; safe to rerun"
    )
    sync.add_argument("runs", nargs="*", help="only these run folders (id prefixes); default: all")
    sync.add_argument("--dir", type=Path, help="the offline folder (default: $CELLAR_OFFLINE_DIR or ~/.cellar/offline)")
    sync.add_argument("--team", help="the team, when the token reaches several (default: $CELLAR_TEAM)")
    sync.add_argument(
        "--retry-for", type=float, default=60.0, help="seconds to keep retrying an unreachable server (default 60)"
    )
    # Pipeline commands live beside the compiler and runner; each module adds its parser.
    pipeline_commands = {}
    for name, module in PIPELINE_COMMANDS.items():
        command_module = importlib.import_module(module)
        command_module.add_parser(commands)
        pipeline_commands[name] = command_module
    args = parser.parse_args(argv)
    if args.command == "sync":
        return _sync(args)
    if args.command in pipeline_commands:
        return pipeline_commands[args.command].run(args)

    client = Client(args.url, args.token)
    try:
        if args.command == "whoami":
            _print(client.whoami())
        elif args.command == "teams":
            _print(client.teams())
        elif args.command == "members":
            _print(client.members(args.team))
        elif args.command == "audit":
            _print(client.audit_events(args.team, actor=args.actor, verb=args.verb))
    except CellarAPIError as exc:
        print(f"error: {exc.message} ({exc.code}, HTTP {exc.status})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot reach {client.url}: {exc}", file=sys.stderr)
        return 2
    return 0


def _sync(args: argparse.Namespace) -> int:
    from cellar.tracking import ConfigurationError, login, sync_runs

    try:
        session = login(args.url, args.token, args.team)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if "Cannot reach" in str(exc) else 1

    def report(result) -> None:
        counts = f"{result.records} records, {result.artifacts} artifacts sent"
        run = f" -> run {result.run_id}" if result.run_id else ""
        print(f"{result.outcome:<22} {result.folder.name}{run} ({counts})")
        for message in result.messages:
            print(f"    {message}", file=sys.stderr if not result.ok else sys.stdout)

    results = sync_runs(session, args.dir, only=args.runs or None, retry_for=args.retry_for, report=report)
    if not results:
        print("nothing to sync")
    failed = [r for r in results if not r.ok]
    if failed:
        print(
            f"error: {len(failed)} of {len(results)} runs did not sync completely; run `cellar sync` again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
