"""Serializers: each type round-trips through the serializer meant for it; the rest is pickled."""

from __future__ import annotations

import datetime
import json
import pickle
import socket
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from cellar.pipelines import serializers
from cellar.pipelines.serializers import (
    SerializationError,
    Serializer,
    check_values,
    deserialize,
    register,
    serialize,
)


def round_trip(value):
    name, data = serialize(value)
    return name, deserialize(name, data)


def test_numpy_arrays_use_npy_and_keep_dtype_and_shape():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    name, back = round_trip(array)
    assert name == "npy"
    assert back.dtype == np.float32 and back.shape == (3, 4)
    np.testing.assert_array_equal(back, array)


def test_numpy_object_arrays_fall_back_to_pickle():
    array = np.array([{"a": 1}, None], dtype=object)
    name, back = round_trip(array)
    assert name == "pickle"
    assert back[0] == {"a": 1} and back[1] is None


def test_dataframes_round_trip_exactly():
    frame = pd.DataFrame(
        {"x": [1, 2, 3], "y": [0.5, None, 2.5], "label": pd.Categorical(["a", "b", "a"])},
        index=pd.Index([10, 20, 30], name="id"),
    )
    name, back = round_trip(frame)
    try:
        import pyarrow  # noqa: F401

        assert name == "parquet"
    except ImportError:
        assert name == "pickle"  # documented: without pyarrow, pandas' own pickling
    pd.testing.assert_frame_equal(back, frame)


def test_series_round_trip():
    series = pd.Series([1.5, 2.5], index=["a", "b"], name="score")
    name, back = round_trip(series)
    pd.testing.assert_series_equal(back, series)


def test_fitted_sklearn_estimators_go_through_joblib():
    iris = load_iris()
    model = LogisticRegression(max_iter=300).fit(iris.data, iris.target)
    name, back = round_trip(model)
    assert name == "joblib"
    np.testing.assert_array_equal(back.predict(iris.data), model.predict(iris.data))


def test_torch_tensors_use_torch_save():
    torch = pytest.importorskip("torch")
    tensor = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    name, back = round_trip(tensor)
    assert name == "torch"
    assert torch.equal(back, tensor)


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, "x", None, True], "b": {"nested": False}},
        [1, 2, 3],
        "text with ünicode",
        12345678901234567890,
        0.1,
        True,
        None,
    ],
    ids=["dict", "list", "str", "bigint", "float", "bool", "none"],
)
def test_plain_values_are_json_with_exact_types(value):
    name, back = round_trip(value)
    assert name == "json"
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        {1: "int key"},
        [1, (2, 3)],
        float("nan"),
        np.float64(1.5),
        {"when": datetime.date(2024, 1, 2)},
        {1, 2, 3},
    ],
    ids=["tuple", "int-keys", "nested-tuple", "nan", "numpy-scalar", "date", "set"],
)
def test_values_json_would_change_are_pickled(value):
    name, back = round_trip(value)
    assert name == "pickle"
    assert type(back) is type(value)
    if value == value:  # NaN is not equal to itself
        assert back == value


def test_unknown_serializer_name_is_a_clear_error():
    with pytest.raises(SerializationError, match=r"no serializer named 'zstd-msgpack'.*known: npy"):
        deserialize("zstd-msgpack", b"")


def test_unserializable_value_says_what_to_do():
    with socket.socket() as sock:
        with pytest.raises(SerializationError, match=r"socket.*cannot be serialized.*create them again"):
            serialize(sock)


def test_a_registered_serializer_is_tried_before_pickle():
    class Box:
        def __init__(self, value):
            self.value = value

    class BoxSerializer(Serializer):
        name = "box"

        def claims(self, obj):
            return isinstance(obj, Box)

        def dumps(self, obj):
            return json.dumps(obj.value).encode()

        def loads(self, data):
            return Box(json.loads(data))

    saved = list(serializers.REGISTRY)
    try:
        register(BoxSerializer())
        assert [s.name for s in serializers.REGISTRY][-2:] == ["box", "pickle"]
        name, back = round_trip(Box(7))
        assert name == "box" and back.value == 7
    finally:
        serializers.REGISTRY[:] = saved


def test_serializing_plain_values_imports_no_heavy_library():
    # The SDK stays light: deciding a value is not an array must not import numpy.
    code = (
        "import sys\n"
        "from cellar.pipelines.serializers import serialize, check_values\n"
        "serialize({'a': [1, 2]}); serialize(ValueError('x')); check_values({'x': 1}, ['x'])\n"
        "print(sorted(m for m in ('numpy', 'pandas', 'torch', 'sklearn', 'joblib', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_check_values_reports_each_live_value():
    def numbers():
        yield 1

    namespace = {
        "n": 3,
        "frame": pd.DataFrame({"a": [1, 2]}),
        "lock": threading.Lock(),
        "gen": numbers(),
        "conn": socket.socket(),
    }
    try:
        report = check_values(namespace, ["n", "frame", "lock", "gen", "conn", "not_run_yet"])
    finally:
        namespace["conn"].close()
    assert set(report) == {"n", "frame", "lock", "gen", "conn"}  # a value the kernel lacks is not judged
    assert report["n"] == {"ok": True, "type": "int", "size": 1, "error": None}
    assert report["frame"]["ok"] and report["frame"]["type"] == "pandas.DataFrame" and report["frame"]["size"] > 0
    for name, kind in [("lock", "_thread.lock"), ("gen", "generator"), ("conn", "socket.socket")]:
        entry = report[name]
        assert entry["ok"] is False and entry["size"] is None, name
        assert entry["type"] == kind
        assert "cannot be serialized" in entry["error"]
    assert "list(...)" in report["gen"]["error"]


def test_check_values_never_raises():
    class Hostile:
        def __reduce__(self):
            raise SystemExit("no")

    report = check_values({"h": Hostile()}, ["h"])
    assert report["h"]["ok"] is False
    assert "SystemExit" in report["h"]["error"] or "no" in report["h"]["error"]


def test_pickle_is_protocol_5():
    name, data = serialize({1, 2})
    assert name == "pickle"
    assert data[:2] == b"\x80\x05"
    assert pickle.loads(data) == {1, 2}


def test_a_value_needing_a_missing_package_says_so():
    data = b"cnot_installed_anywhere\nModel\n."  # a pickle of a class from a package this environment lacks
    with pytest.raises(SerializationError, match=r"'pickle' serializer, which needs a package.*not_installed_anywhere"):
        deserialize("pickle", data)
