"""`make hub-install` (run by `make up` and `make test`) is cached: once built, nothing is redone,
and touching the extension's source makes only the extension stale."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.processes


def up_to_date(target: str) -> bool:
    """`make -q`: exit 0 when the target needs no work (nothing is run)."""
    return subprocess.run(["make", "-q", target], cwd=REPO, capture_output=True, timeout=60).returncode == 0


def test_a_second_install_rebuilds_nothing():
    subprocess.run(["make", "hub-install"], cwd=REPO, check=True, capture_output=True, timeout=900)
    assert up_to_date("hub-install")
    built = REPO / "notebooks_ext" / "jupyter-data" / "labextensions" / "cellar-notebooks" / "package.json"
    source = REPO / "notebooks_ext" / "labextension" / "src" / "index.ts"
    assert built.exists() and (built.parent / "static").is_dir()
    before = source.stat()
    try:
        os.utime(source, ns=(before.st_atime_ns, built.stat().st_mtime_ns + 1_000_000_000))
        assert not up_to_date("hub-install")  # a changed source makes the extension stale...
        assert up_to_date(".venv-hub/.installed")  # ...and only the extension
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert up_to_date("hub-install")
