"""`cellar promote` (placeholder until its owner lands it)."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    commands.add_parser("promote", help="(not yet available)")


def run(args: argparse.Namespace) -> int:
    print("error: `cellar promote` is not available yet")
    return 2
