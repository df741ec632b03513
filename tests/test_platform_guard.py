"""`platform/` is a source root, not a package: the stdlib `platform` module must win everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROBE = "import platform; assert platform.system(); print('stdlib-platform', platform.__file__)"


def test_platform_folder_is_not_a_package():
    assert (REPO / "platform" / "cellar_server" / "__init__.py").is_file()
    assert not (REPO / "platform" / "__init__.py").exists()


def test_stdlib_platform_in_this_process():
    import platform

    assert platform.system()
    assert Path(platform.__file__).parent == Path(sysconfig.get_paths()["stdlib"])


def _run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, env=env, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


ENTRY_POINTS = {
    "manage.py": [sys.executable, "manage.py", "shell", "-c", PROBE],
    "python -m from repo root": [sys.executable, "-c", "import cellar_server.settings; " + PROBE],
    "wsgi (gunicorn's import)": [sys.executable, "-c", "import cellar_server.wsgi; " + PROBE],
    "celery app": [
        sys.executable,
        "-c",
        "from cellar_server.celery import app; import cellar_server.settings; " + PROBE,
    ],
    "python -m pytest": [sys.executable, "-m", "pytest", "--co", "-q", "tests/test_platform_guard.py"],
    "cellar CLI": [str(BIN / "cellar"), "--help"],
    "cellar-worker": [sys.executable, "-c", "import cellar_worker.app; " + PROBE],
    "gunicorn --check-config": [str(BIN / "gunicorn"), "--check-config", "cellar_server.wsgi"],
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_every_entry_point_sees_the_stdlib_platform(name):
    output = _run(ENTRY_POINTS[name])
    if "stdlib-platform" in output:
        assert str(REPO / "platform") not in output.split("stdlib-platform", 1)[1].split()[0]


def test_the_worker_loads_no_django_project_or_database_layer():
    # kombu imports django.utils.functional when Django happens to be installed (it is not
    # in the worker image); what matters is that no settings, ORM or server code load.
    loaded = "sorted(m for m in ('django.db', 'django.conf', 'cellar_server') if m in sys.modules)"
    probe = f"import sys, cellar_worker.app; print({loaded})"
    assert _run([sys.executable, "-c", probe]).strip() == "[]"
