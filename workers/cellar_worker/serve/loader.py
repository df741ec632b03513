"""Model versions from the artifact store into memory, as Predictors.

A version's manifest lists its files (relpath → sha256); each blob is read from
teams/<team>/data/<sha[:2]>/<sha>, checked, and written under the cache directory, then
`cellar.models.load_model` loads the directory. Loading runs user code (unpickling), which is
why it happens here and never in the web or control processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from cellar.artifacts import ArtifactStore
from cellar.models import LoadedModel, Signature, load_model

_NUMERIC = {"double", "float", "integer", "long"}

# The fast path hands scikit-learn an array whose columns are in feature_names_in_ order (checked
# at load); the estimator's "fitted with feature names" warning would then be noise on every call.
warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)


class Predictor:
    """One loaded version: validates rows against its signature and predicts.

    Numeric scikit-learn models take a float array built straight from the validated columns
    (in the estimator's fitted feature order) instead of a DataFrame: a DataFrame costs more
    than the prediction itself for a single row.
    """

    def __init__(self, version_id: str, model: LoadedModel, manifest: dict[str, Any]):
        self.version_id = version_id
        self.model = model
        self.manifest = manifest
        self.signature: Signature = model.signature or Signature.from_dict(manifest.get("signature")) or Signature()
        self.names = self.signature.input_names()
        self._array_order = self._fast_order()

    def _fast_order(self) -> list[str] | None:
        if self.model.flavor != "sklearn" or not self.names:
            return None
        types = {s.name: s.type for s in self.signature.inputs or [] if getattr(s, "name", None)}
        if any(types.get(n) not in _NUMERIC for n in self.names):
            return None
        fitted = getattr(self.model.raw, "feature_names_in_", None)
        if fitted is None:
            return list(self.names)
        fitted = [str(n) for n in fitted]
        return fitted if set(fitted) <= set(self.names) else None

    def validate(self, payload: Any, *, extras: tuple[str, ...] = ()):
        """ValidatedInput (columns in signature order) or SignatureError."""
        return self.signature.validate_columns(payload, extras=extras)

    def predict_columns(self, columns: dict[str, list], n_rows: int) -> list:
        if self._array_order is not None and all(v is not None for n in self._array_order for v in columns[n]):
            import numpy as np

            array = np.array([columns[n] for n in self._array_order], dtype=np.float64).T.reshape(n_rows, -1)
            output = self.model.raw.predict(array)
        else:
            import pandas as pd

            output = self.model.predict(pd.DataFrame(columns, copy=False))
        return _as_list(output)

    def predict_rows(self, rows: Any) -> list:
        validated = self.validate(rows)
        return self.predict_columns(validated.columns, validated.n_rows)


def _as_list(output: Any) -> list:
    if hasattr(output, "tolist"):
        return output.tolist()
    if hasattr(output, "to_dict"):  # a DataFrame of outputs
        return output.to_dict(orient="records")
    return list(output)


def load_version(
    store: ArtifactStore, cache_dir: Path, team: str, manifest: dict[str, Any], *, probe_timeout: float = 0
) -> Predictor:
    """Materialize the version's files (checked by hash) and load it, after a probe load in a child
    process when `probe_timeout` > 0. Raises on any failure."""
    version_id = str(manifest["id"])
    files = manifest.get("files") or {}
    if not files:
        raise ValueError(f"model version {version_id} lists no files")
    target = cache_dir / team / version_id
    staging = target.with_name(f".{version_id}.{os.getpid()}.partial")
    if not target.exists():
        shutil.rmtree(staging, ignore_errors=True)
        for relpath, sha in files.items():
            path = (staging / relpath).resolve()
            if not str(path).startswith(str(staging.resolve())):
                raise ValueError(f"model file path {relpath!r} leaves the model directory")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.get_blob(team, sha))
        staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
        except OSError:  # another serve process materialized it first
            shutil.rmtree(staging, ignore_errors=True)
    if probe_timeout:
        probe(target, timeout=probe_timeout)
    return Predictor(version_id, load_model(target), manifest)


class ProbeError(RuntimeError):
    pass


def probe(target: Path, *, timeout: float) -> None:
    """Load `target` in a child process first; raise ProbeError with its last words when it fails."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cellar_worker.serve.probe", str(target)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"loading the model took over {timeout:g} s (in a probe process)") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if result.returncode < 0:
            raise ProbeError(f"loading the model killed its process (signal {-result.returncode}) {last}".strip())
        raise ProbeError(last or f"loading the model exited its process with code {result.returncode}")
