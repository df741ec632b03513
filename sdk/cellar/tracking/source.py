"""Where a run's code came from: a notebook (path + snapshot) or a script (argv[0] + git commit),
and the environment it ran in (Python version and every installed distribution).

Tags follow MLflow's names, so the server fills the run's source columns from them:
mlflow.source.type (NOTEBOOK / LOCAL), mlflow.source.name, mlflow.source.git.commit. The
environment is a summary tag (`cellar.environment`), a hash of the lock (`cellar.environment_hash`:
two runs with the same hash ran on the same packages) and the lock itself as an artifact,
`environment/requirements.txt`, in pip's format so `pip install -r` rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE_TYPE = "mlflow.source.type"
SOURCE_NAME = "mlflow.source.name"
GIT_COMMIT = "mlflow.source.git.commit"
SNAPSHOT_DIR = "code"
ENVIRONMENT = "cellar.environment"
ENVIRONMENT_HASH = "cellar.environment_hash"
ENVIRONMENT_FILE = "environment/requirements.txt"


@dataclass
class Source:
    tags: dict[str, str] = field(default_factory=dict)
    # (artifact path, bytes) of the code that ran: the notebook file, or its cells' history
    snapshot: tuple[str, bytes] | None = None
    # (artifact path, bytes) of the environment lock
    environment: tuple[str, bytes] | None = None

    @property
    def files(self) -> list[tuple[str, bytes]]:
        return [f for f in (self.snapshot, self.environment) if f is not None]


def environment() -> tuple[dict[str, str], tuple[str, bytes]]:
    """The interpreter's environment: summary and hash tags, and the lock as requirements.txt."""
    from cellar.pipelines.environment import installed_lock  # the same lock pipeline versions record

    lock = installed_lock()
    python = platform.python_version()
    text = f"# Python {python}\n" + "".join(f"{name}=={version}\n" for name, version in lock.items())
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    tags = {ENVIRONMENT: f"Python {python}, {len(lock)} packages", ENVIRONMENT_HASH: digest}
    return tags, (ENVIRONMENT_FILE, text.encode())


def kernel_shell() -> Any | None:
    """The IPython shell when running inside a Jupyter kernel, else None (plain `ipython` included)."""
    ipython = sys.modules.get("IPython")  # a kernel has always imported it; never import it ourselves
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:
        return None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    return shell


def notebook_path(shell: Any) -> str | None:
    """Jupyter Server names the kernel's notebook in JPY_SESSION_NAME; IPython 8+ also sets __session__."""
    user_ns = getattr(shell, "user_ns", None) or {}
    for candidate in (
        os.environ.get("JPY_SESSION_NAME"),
        user_ns.get("__session__"),
        user_ns.get("__vsc_ipynb_file__"),
    ):
        if candidate:
            return str(candidate)
    return None


def cell_history(shell: Any) -> str:
    """The cells run so far (In[1..n]) as one Python file, numbered like the notebook shows them."""
    user_ns = getattr(shell, "user_ns", None) or {}
    cells = list(user_ns.get("In") or [])
    parts = [f"# In[{number}]:\n{code.rstrip()}\n" for number, code in enumerate(cells) if number and code.strip()]
    return "# Code run in the notebook kernel, in order.\n\n" + "\n".join(parts)


def git_commit(cwd: str | None = None) -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or os.getcwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def _notebook_file(path: str | None) -> Path | None:
    """The .ipynb on disk: the path as given (absolute, or relative to the kernel's cwd), else
    its name in the cwd (Jupyter starts a kernel in its notebook's folder; older servers name
    the notebook relative to their root)."""
    if not path or not path.endswith(".ipynb"):
        return None
    for candidate in (Path(path), Path.cwd() / Path(path).name):
        if candidate.is_file():
            return candidate
    return None


def detect(shell: Any | None = None) -> Source:
    """The source of the code calling us: pass `shell` to describe a given IPython shell."""
    shell = shell if shell is not None else kernel_shell()
    if shell is not None:
        path = notebook_path(shell)
        tags = {SOURCE_TYPE: "NOTEBOOK", SOURCE_NAME: path or "notebook"}
        file = _notebook_file(path)
        if file is not None:
            snapshot = (f"{SNAPSHOT_DIR}/notebook_snapshot.ipynb", file.read_bytes())
        else:
            snapshot = (f"{SNAPSHOT_DIR}/notebook_snapshot.py", cell_history(shell).encode())
        env_tags, env_file = environment()
        return Source(tags={**tags, **env_tags}, snapshot=snapshot, environment=env_file)
    tags = {SOURCE_TYPE: "LOCAL", SOURCE_NAME: (sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>")}
    commit = git_commit()
    if commit:
        tags[GIT_COMMIT] = commit
    env_tags, env_file = environment()
    return Source(tags={**tags, **env_tags}, environment=env_file)
