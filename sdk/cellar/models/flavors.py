"""Save and load model directories in MLflow's format, without importing mlflow.

A directory holds an `MLmodel` YAML file naming its flavors, the pickled model and the
environment files MLflow writes (`requirements.txt`, `python_env.yaml`, `conda.yaml`):

- `sklearn` (+ `python_function` with loader `mlflow.sklearn`) for scikit-learn estimators,
  so an unmodified mlflow client can `mlflow.pyfunc.load_model` it;
- `pytorch` for a `torch.nn.Module` when torch is installed (whole module, `torch.save`);
- `cellar` for any other picklable object with a `predict` method.

`load_model` reads Cellar's directories and those the mlflow client logs (sklearn flavor as
pickle, cloudpickle, or skops when skops is installed).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import pickle
import platform
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellar.models.signature import Signature, infer_signature

MLMODEL = "MLmodel"
MODEL_FILE = "model.pkl"
INPUT_EXAMPLE_FILE = "input_example.json"
FLAVORS = ("sklearn", "pytorch", "cellar")


class ModelFormatError(Exception):
    """A model directory Cellar cannot read or an object it cannot save."""


def _yaml():
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML is a dependency of the SDK
        raise ModelFormatError("reading and writing MLmodel files needs PyYAML (pip install pyyaml)") from exc
    return yaml


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _flavor_of(obj: Any) -> str:
    sklearn_base = sys.modules.get("sklearn.base")
    if sklearn_base is not None and isinstance(obj, sklearn_base.BaseEstimator):
        return "sklearn"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        return "pytorch"
    if callable(getattr(obj, "predict", None)):
        return "cellar"
    raise ModelFormatError(
        f"{type(obj).__name__} has no predict() method; register a scikit-learn estimator, a torch module "
        "or an object with predict(rows)"
    )


def _pickler() -> tuple[Any, str]:
    # cloudpickle keeps lambdas and notebook-defined classes; plain pickle when it is absent.
    try:
        import cloudpickle

        return cloudpickle, "cloudpickle"
    except ImportError:
        return pickle, "pickle"


def _requirements(flavor: str, serialization: str) -> list[str]:
    names = {"sklearn": ["scikit-learn", "numpy", "scipy", "pandas"], "pytorch": ["torch", "numpy"]}.get(flavor, [])
    if serialization == "cloudpickle":
        names.append("cloudpickle")
    return [f"{name}=={ver}" for name in names if (ver := _version(name))]


def _example_json(example: Any) -> dict[str, Any]:
    if hasattr(example, "to_dict") and hasattr(example, "columns"):
        return {"columns": [str(c) for c in example.columns], "data": example.to_numpy().tolist()}
    if isinstance(example, Mapping):
        return {"inputs": {k: v.tolist() if hasattr(v, "tolist") else v for k, v in example.items()}}
    return {"inputs": example.tolist() if hasattr(example, "tolist") else example}


def save_model(obj: Any, path: str | Path, *, signature: Signature | None = None, input_example: Any = None) -> dict:
    """Write `obj` as an MLflow-compatible model directory at `path`; returns its MLmodel as a dict."""
    target = Path(path)
    if target.exists() and any(target.iterdir()):
        raise ModelFormatError(f"{target} already exists and is not empty")
    target.mkdir(parents=True, exist_ok=True)
    flavor = _flavor_of(obj)
    if signature is None and input_example is not None:
        output = None
        try:
            output = obj.predict(input_example)
        except Exception:  # the example may need preprocessing the caller did not give; inputs still help
            output = None
        signature = infer_signature(input_example, output)

    python_version = platform.python_version()
    flavors: dict[str, Any] = {}
    if flavor == "pytorch":
        import torch

        torch.save(obj, target / "model.pth")
        flavors["pytorch"] = {"model_data": "model.pth", "pytorch_version": torch.__version__}
        serialization = "torch"
    else:
        module, serialization = _pickler()
        with open(target / MODEL_FILE, "wb") as handle:
            module.dump(obj, handle, protocol=pickle.DEFAULT_PROTOCOL)
        if flavor == "sklearn":
            flavors["python_function"] = {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": MODEL_FILE,
                "predict_fn": "predict",
                "python_version": python_version,
            }
            flavors["sklearn"] = {
                "code": None,
                "pickled_model": MODEL_FILE,
                "serialization_format": serialization,
                "sklearn_version": _version("scikit-learn"),
            }
        else:
            flavors["cellar"] = {
                "pickled_model": MODEL_FILE,
                "serialization_format": serialization,
                "python_version": python_version,
                "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            }

    requirements = _requirements(flavor, serialization)
    (target / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
    yaml = _yaml()
    (target / "python_env.yaml").write_text(
        yaml.safe_dump(
            {"python": python_version, "build_dependencies": ["pip"], "dependencies": ["-r requirements.txt"]}
        )
    )
    (target / "conda.yaml").write_text(
        yaml.safe_dump(
            {
                "channels": ["conda-forge"],
                "dependencies": [f"python={python_version}", "pip", {"pip": requirements}],
                "name": "cellar_env",
            }
        )
    )
    mlmodel: dict[str, Any] = {
        "flavors": flavors,
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "cellar_flavor": flavor,
    }
    if signature is not None:
        mlmodel["signature"] = signature.to_dict()
    if input_example is not None:
        (target / INPUT_EXAMPLE_FILE).write_text(json.dumps(_example_json(input_example), default=str))
        mlmodel["saved_input_example_info"] = {"artifact_path": INPUT_EXAMPLE_FILE, "type": "json_object"}
    mlmodel["model_size_bytes"] = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
    (target / MLMODEL).write_text(yaml.safe_dump(mlmodel, sort_keys=True))
    return mlmodel


def read_mlmodel(path: str | Path) -> dict[str, Any]:
    file = Path(path) / MLMODEL
    if not file.is_file():
        raise ModelFormatError(f"{path} is not a model directory: it has no MLmodel file")
    data = _yaml().safe_load(file.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise ModelFormatError(f"{file} has no 'flavors' mapping")
    return data


def flavor_name(mlmodel: Mapping[str, Any]) -> str:
    """The flavor Cellar loads the directory with."""
    flavors = mlmodel.get("flavors") or {}
    for name in FLAVORS:
        if name in flavors:
            return name
    raise ModelFormatError(
        f"no flavor Cellar can load (found: {', '.join(flavors) or 'none'}; supported: {', '.join(FLAVORS)})"
    )


def _unpickle(file: Path, serialization: str) -> Any:
    if serialization == "skops":
        try:
            import skops.io as sio
        except ImportError as exc:
            raise ModelFormatError("this model was saved with skops; install skops to load it") from exc
        return sio.load(file, trusted=sio.get_untrusted_types(file=file))
    if serialization not in ("pickle", "cloudpickle", None):
        raise ModelFormatError(f"unknown serialization format {serialization!r}")
    with open(file, "rb") as handle:
        return pickle.load(handle)  # cloudpickle output loads with pickle when cloudpickle is importable


class LoadedModel:
    """A loaded model: `.predict(frame_or_rows)`, `.signature`, `.flavor`, `.raw` (the object)."""

    def __init__(self, raw: Any, flavor: str, signature: Signature | None, metadata: dict[str, Any]):
        self.raw = raw
        self.flavor = flavor
        self.signature = signature
        self.metadata = metadata
        names = signature.input_names() if signature is not None else []
        self._names = names

    def _as_input(self, data: Any) -> Any:
        if isinstance(data, (list, Mapping)):
            import pandas as pd

            if isinstance(data, Mapping) and any(
                k in data for k in ("dataframe_records", "dataframe_split", "inputs", "instances")
            ):
                return (self.signature or Signature()).validate(data)
            if isinstance(data, Mapping):
                data = {k: v if isinstance(v, list) else [v] for k, v in data.items()}
            frame = pd.DataFrame(data)
            if self._names and set(self._names) <= set(frame.columns):
                frame = frame[self._names]
            return frame
        return data

    def predict(self, data: Any) -> Any:
        data = self._as_input(data)
        if self.flavor == "pytorch":
            import torch

            with torch.no_grad():
                values = data.to_numpy() if hasattr(data, "to_numpy") else data
                return self.raw(torch.as_tensor(values, dtype=torch.float32)).numpy()
        return self.raw.predict(data)

    def __repr__(self) -> str:
        return f"LoadedModel(flavor={self.flavor!r}, model={type(self.raw).__name__})"


def load_model(path: str | Path) -> LoadedModel:
    """Load a Cellar- or mlflow-saved model directory (no mlflow import)."""
    root = Path(path)
    mlmodel = read_mlmodel(root)
    flavor = flavor_name(mlmodel)
    conf = mlmodel["flavors"][flavor]
    if flavor == "pytorch":
        import torch

        model_file = root / conf.get("model_data", "model.pth")
        if model_file.is_dir():  # mlflow.pytorch writes data/model.pth
            model_file = model_file / "model.pth"
        raw = torch.load(model_file, weights_only=False)
        raw.eval()
    else:
        raw = _unpickle(root / conf.get("pickled_model", MODEL_FILE), conf.get("serialization_format"))
    return LoadedModel(raw, flavor, Signature.from_dict(mlmodel.get("signature")), mlmodel)
