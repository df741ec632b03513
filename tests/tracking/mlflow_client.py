"""Run scripts with the unmodified `mlflow` client (its own venv) against a live Cellar server."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"

PRELUDE = """
import json, os, sys, tempfile, pathlib
import mlflow
from mlflow import MlflowClient
out = {}
"""
EPILOGUE = """
print("RESULT " + json.dumps(out, default=str))
"""


def run_mlflow(script: str, *, url: str, token: str, timeout: int = 240) -> dict:
    """Run `script` (which fills the dict `out`) with MLflow pointed at the team; return `out`."""
    if not MLFLOW_PYTHON.exists():
        raise AssertionError(f"{MLFLOW_PYTHON} is missing: `make test` creates it from requirements-mlflow.txt")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "CELLAR", "PYTHONPATH"))}
    env.update(
        MLFLOW_TRACKING_URI=url,
        MLFLOW_TRACKING_TOKEN=token,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        GIT_PYTHON_REFRESH="quiet",
    )
    code = PRELUDE + textwrap.dedent(script) + EPILOGUE
    result = subprocess.run([str(MLFLOW_PYTHON), "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise AssertionError(
            f"mlflow script failed (rc={result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])
