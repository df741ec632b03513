"""`cellar run` (placeholder until its owner lands it)."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    commands.add_parser("run", help="(not yet available)")


def run(args: argparse.Namespace) -> int:
    print("error: `cellar run` is not available yet")
    return 2
