"""Model directories: Cellar saves what the unmodified mlflow client loads, and loads what it saves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from cellar.models import ModelFormatError, load_model, read_mlmodel, save_model

ROOT = Path(__file__).resolve().parents[3]
MLFLOW_PY = ROOT / ".venv-mlflow" / "bin" / "python"
needs_mlflow = pytest.mark.skipif(not MLFLOW_PY.exists(), reason="the .venv-mlflow environment is not built")


@pytest.fixture
def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})


@pytest.fixture
def model(data: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(data, (data["a"] + data["b"] > 0).astype(int))


class Doubler:
    """Not scikit-learn: anything picklable with predict() is a model (the 'cellar' flavor)."""

    def predict(self, rows):
        return [2 * v for v in rows["v"]]


def run_mlflow(code: str) -> str:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": ""}
    done = subprocess.run([str(MLFLOW_PY), "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_sklearn_round_trip_with_signature_from_example(tmp_path: Path, model, data) -> None:
    meta = save_model(model, tmp_path / "m", input_example=data.head(3))
    assert meta["cellar_flavor"] == "sklearn"
    assert meta["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"MLmodel", "model.pkl", "requirements.txt", "conda.yaml"}
    loaded = load_model(tmp_path / "m")
    assert loaded.flavor == "sklearn"
    assert loaded.signature.input_names() == ["a", "b"]
    expected = model.predict(data).tolist()
    assert loaded.predict(data).tolist() == expected
    assert loaded.predict(data.to_dict(orient="records")).tolist() == expected
    split = {"dataframe_split": {"columns": ["a", "b"], "data": data.values.tolist()}}
    assert loaded.predict(split).tolist() == expected


def test_any_object_with_predict_is_the_cellar_flavor(tmp_path: Path) -> None:
    meta = save_model(Doubler(), tmp_path / "d")
    assert meta["cellar_flavor"] == "cellar" and "python_function" not in meta["flavors"]
    assert load_model(tmp_path / "d").predict([{"v": 1}, {"v": 4}]) == [2, 8]


def test_refuses_objects_without_predict_and_non_empty_targets(tmp_path: Path, model) -> None:
    with pytest.raises(ModelFormatError, match="no predict"):
        save_model(object(), tmp_path / "x")
    save_model(model, tmp_path / "y")
    with pytest.raises(ModelFormatError, match="not empty"):
        save_model(model, tmp_path / "y")
    with pytest.raises(ModelFormatError, match="no MLmodel"):
        load_model(tmp_path)


@needs_mlflow
def test_the_unmodified_mlflow_client_loads_a_cellar_saved_model(tmp_path: Path, model, data) -> None:
    save_model(model, tmp_path / "m", input_example=data.head(2))
    rows = json.dumps(data.head(5).to_dict(orient="records"))
    out = run_mlflow(
        "import json, pandas as pd, mlflow.pyfunc\n"
        f"m = mlflow.pyfunc.load_model({str(tmp_path / 'm')!r})\n"
        f"print(json.dumps(m.predict(pd.DataFrame(json.loads({rows!r}))).tolist()))"
    )
    assert json.loads(out) == model.predict(data.head(5)).tolist()


@needs_mlflow
@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle", "skops"])
def test_cellar_loads_what_the_mlflow_client_saved(tmp_path: Path, model, data, fmt: str) -> None:
    target = tmp_path / "saved"
    run_mlflow(
        "import pickle, mlflow.sklearn, pandas as pd\n"
        "from mlflow.models import infer_signature\n"
        f"m = pickle.loads({pickle_bytes(model)!r})\n"
        "X = pd.DataFrame({'a': [0.1, 0.2], 'b': [0.3, 0.4]})\n"
        f"mlflow.sklearn.save_model(m, {str(target)!r}, serialization_format={fmt!r},"
        " signature=infer_signature(X, m.predict(X)))\n"
        "print('ok')"
    )
    assert read_mlmodel(target)["flavors"]["sklearn"]["serialization_format"] == fmt
    loaded = load_model(target)
    assert loaded.signature.input_names() == ["a", "b"]
    assert loaded.predict(data).tolist() == model.predict(data).tolist()


def pickle_bytes(obj) -> bytes:
    import pickle

    return pickle.dumps(obj)


def test_sys_path_has_no_mlflow() -> None:
    # load_model must not need mlflow: the server and serve environments do not install it.
    assert "mlflow" not in sys.modules
