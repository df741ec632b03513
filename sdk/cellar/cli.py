"""The `cellar` command: talk to a Cellar server from a terminal or a script."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from cellar.client import CellarAPIError, Client


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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    raise SystemExit(main())
