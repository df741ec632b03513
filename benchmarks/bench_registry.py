"""Registry hot paths beside MLflow 3.17.2, same machine, same model, same payloads.

1. Request validation, what a prediction server does before calling the model: parse the JSON
   body's rows and check them against the signature. Cellar: `json.loads` +
   `Signature.validate_columns` (the serve path) and `Signature.validate` (a DataFrame out).
   MLflow: its scoring server's `infer_and_parse_data` + `_enforce_schema` (the pyfunc path).
2. Loading a registered scikit-learn model directory: `cellar.models.load_model` vs
   `mlflow.pyfunc.load_model` (warm process, files on local disk).

MLflow runs in `.venv-mlflow` (unmodified); Cellar in this interpreter. Prints one line per
measurement: Cellar, MLflow and the ratio (MLflow / Cellar: > 1 means Cellar is faster).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from cellar.models import infer_signature, load_model, save_model

REPO = Path(__file__).resolve().parents[1]
MLFLOW_PY = REPO / ".venv-mlflow" / "bin" / "python"
FEATURES = 10
REPEATS = {1: 3000, 100: 300}


def _payloads() -> dict[int, str]:
    rng = np.random.default_rng(0)
    out = {}
    for rows in REPEATS:
        frame = pd.DataFrame(rng.normal(size=(rows, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)])
        out[rows] = json.dumps({"dataframe_records": frame.to_dict(orient="records")})
    return out


def _time(fn, repeats: int) -> float:
    """Median microseconds per call over 5 rounds."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        rounds.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(rounds)


MLFLOW_SIDE = """
import json, statistics, sys, time
import mlflow.pyfunc
from mlflow.models.utils import _enforce_schema
from mlflow.pyfunc import scoring_server
args = json.loads(sys.stdin.read())
model = mlflow.pyfunc.load_model(args["model"])
schema = model.metadata.get_input_schema()
def timed(fn, repeats):
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        rounds.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(rounds)
out = {}
for rows, body in args["payloads"].items():
    def check(body=body):
        data = scoring_server.infer_and_parse_data(json.loads(body), schema)
        _enforce_schema(data, schema)
    out[rows] = timed(check, args["repeats"][rows])
def load():
    mlflow.pyfunc.load_model(args["model"])
out["load"] = timed(load, 20)
print("RESULT " + json.dumps(out))
"""


def main() -> int:
    if not MLFLOW_PY.exists():
        print(f"{MLFLOW_PY} is missing: `make test` builds .venv-mlflow", file=sys.stderr)
        return 1
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(500, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)])
    model = LogisticRegression().fit(X, (X["f0"] > 0).astype(int))
    payloads = _payloads()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        save_model(model, path, signature=infer_signature(X, model.predict(X)))
        signature = load_model(path).signature
        cellar = {}
        for rows, body in payloads.items():
            cellar[f"{rows}-columns"] = _time(
                lambda body=body: signature.validate_columns(json.loads(body)), REPEATS[rows]
            )
            cellar[f"{rows}-frame"] = _time(lambda body=body: signature.validate(json.loads(body)), REPEATS[rows])
        cellar["load"] = _time(lambda: load_model(path), 20)
        args = {
            "model": str(path),
            "payloads": {str(k): v for k, v in payloads.items()},
            "repeats": {str(k): v for k, v in REPEATS.items()},
        }
        done = subprocess.run(
            [str(MLFLOW_PY), "-c", textwrap.dedent(MLFLOW_SIDE)],
            input=json.dumps(args),
            capture_output=True,
            text=True,
            timeout=900,
            env={"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": "/usr/bin:/bin"},
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        peer = json.loads(lines[-1][len("RESULT ") :])
    print(f"request validation, {FEATURES} double features (median µs per request; ratio = MLflow / Cellar)")
    for rows in REPEATS:
        theirs = peer[str(rows)]
        for kind, label in (("columns", "validate_columns"), ("frame", "validate -> DataFrame")):
            ours = cellar[f"{rows}-{kind}"]
            print(
                f"  {rows:>3} row{'s' if rows > 1 else ' '} {label:<22} cellar {ours:9.1f}  mlflow {theirs:9.1f}  "
                f"ratio {theirs / ours:6.1f}x"
            )
    print(
        f"load a scikit-learn model dir     cellar {cellar['load'] / 1000:7.2f} ms  "
        f"mlflow {peer['load'] / 1000:7.2f} ms"
        f"  ratio {peer['load'] / cellar['load']:6.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
