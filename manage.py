#!/usr/bin/env python
"""Django's command-line entry point for the Cellar control plane.

`platform/` is a source root, not a package: it goes on sys.path so that
`cellar_server` imports while the standard library's `platform` module stays
reachable (see ARCHITECTURE.md, "The platform trap").
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def main() -> None:
    source_root = str(BASE_DIR / "platform")
    if source_root not in sys.path:
        sys.path.insert(0, source_root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cellar_server.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
