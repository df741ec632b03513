"""Serializers for values passed between steps (ARCHITECTURE.md, "Artifacts").

An abstract base class plus a small ordered registry, as Metaflow and Kale do it: the
first serializer that claims a value's type and manages to write it wins; pickle is the
fallback that claims everything. A stored artifact records the serializer's *name*, so
reading never guesses.

Heavy libraries are never imported to decide: a value can only be a numpy array if numpy
is already in `sys.modules`, so each check first looks there. Importing the SDK stays cheap
and works where numpy, pandas or torch are not installed.

Built in, in the order they are tried:

* ``npy``: numpy ``ndarray`` (exact type, not subclasses) through ``np.save`` with
  ``allow_pickle=False``; object arrays cannot be written that way and fall through.
* ``parquet``: pandas ``DataFrame`` through pyarrow, when pyarrow is importable and the
  frame reads back equal; otherwise the frame goes to pickle (pandas' own pickling is exact).
* ``torch``: torch tensors and modules through ``torch.save`` when torch is loaded.
* ``joblib``: scikit-learn estimators (and xgboost / lightgbm / catboost models) through
  joblib, which writes their numpy buffers efficiently.
* ``json``: dict / list / str / int / float / bool / None, only when the round trip is
  exact (no tuples, no non-string keys, no NaN, no subclasses such as numpy scalars).
* ``pickle``: everything else, protocol 5.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import pickle
import sys
from abc import ABC, abstractmethod
from typing import Any


class SerializationError(Exception):
    """A value could not be written or read back; the message says which and what to do."""


class Serializer(ABC):
    name: str = ""

    @abstractmethod
    def claims(self, obj: Any) -> bool:
        """Whether this serializer is meant for `obj`'s type (cheap: no heavy imports)."""

    @abstractmethod
    def dumps(self, obj: Any) -> bytes:
        """The bytes for `obj`; raise to let the next serializer try."""

    @abstractmethod
    def loads(self, data: bytes) -> Any: ...


def _loaded(module: str) -> Any | None:
    """The module if it is already imported, else None: a value of its types cannot exist otherwise."""
    return sys.modules.get(module)


def _importable(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def type_name(obj: Any) -> str:
    """`module.QualName` of a value's type, as shown to a person (`builtins.` dropped)."""
    cls = type(obj)
    module = getattr(cls, "__module__", "") or ""
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module == "builtins" else f"{module}.{qualname}"


class NumpySerializer(Serializer):
    name = "npy"

    def claims(self, obj: Any) -> bool:
        np = _loaded("numpy")
        return np is not None and type(obj) is np.ndarray

    def dumps(self, obj: Any) -> bytes:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, obj, allow_pickle=False)  # object arrays raise: pickle takes them
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)


class ParquetSerializer(Serializer):
    """pandas DataFrames as Parquet. Needs pyarrow; without it DataFrames are pickled."""

    name = "parquet"

    def claims(self, obj: Any) -> bool:
        pd = _loaded("pandas")
        return pd is not None and type(obj) is pd.DataFrame and _importable("pyarrow") is not None

    def dumps(self, obj: Any) -> bytes:
        buffer = io.BytesIO()
        obj.to_parquet(buffer, engine="pyarrow")
        data = buffer.getvalue()
        # Parquet drops some pandas details (mixed object columns, some index kinds); a step
        # must get back exactly what the previous one had, so check and otherwise let pickle do it.
        import pandas as pd

        try:
            pd.testing.assert_frame_equal(self.loads(data), obj, check_exact=True)
        except AssertionError as exc:
            raise SerializationError(f"the frame does not read back equal from Parquet: {exc}") from None
        return data

    def loads(self, data: bytes) -> Any:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


class TorchSerializer(Serializer):
    name = "torch"

    def claims(self, obj: Any) -> bool:
        torch = _loaded("torch")
        return torch is not None and isinstance(obj, torch.Tensor | torch.nn.Module)

    def dumps(self, obj: Any) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import torch

        # Modules are full Python objects; this store only holds what this team's steps wrote.
        return torch.load(io.BytesIO(data), weights_only=False)


class JoblibSerializer(Serializer):
    name = "joblib"
    MODEL_LIBRARIES = ("xgboost", "lightgbm", "catboost")

    def claims(self, obj: Any) -> bool:
        module = (getattr(type(obj), "__module__", "") or "").split(".")[0]
        if module in self.MODEL_LIBRARIES:
            return _importable("joblib") is not None
        base = _loaded("sklearn.base")
        return base is not None and isinstance(obj, base.BaseEstimator) and _importable("joblib") is not None

    def dumps(self, obj: Any) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(obj, buffer)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))


_JSON_SCALARS = (str, int, float, bool, type(None))


def json_exact(value: Any) -> bool:
    """Whether `json.loads(json.dumps(value)) == value` with the same types all the way down."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind in _JSON_SCALARS:
            continue
        elif kind is list:
            stack.extend(item)
        elif kind is dict:
            if any(type(key) is not str for key in item):
                return False
            stack.extend(item.values())
        else:
            return False
    return True


class JsonSerializer(Serializer):
    name = "json"

    def claims(self, obj: Any) -> bool:
        return json_exact(obj)

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


class PickleSerializer(Serializer):
    name = "pickle"

    def claims(self, obj: Any) -> bool:
        return True

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=5)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


# Tried in order; pickle last. `register` puts a new one before pickle.
REGISTRY: list[Serializer] = [
    NumpySerializer(),
    ParquetSerializer(),
    TorchSerializer(),
    JoblibSerializer(),
    JsonSerializer(),
    PickleSerializer(),
]


def register(serializer: Serializer) -> None:
    """Add a serializer, tried before the pickle fallback (a same-named one is replaced)."""
    REGISTRY[:] = [s for s in REGISTRY if s.name != serializer.name]
    fallback = next((i for i, s in enumerate(REGISTRY) if s.name == "pickle"), len(REGISTRY))
    REGISTRY.insert(fallback, serializer)


def get_serializer(name: str) -> Serializer:
    for serializer in REGISTRY:
        if serializer.name == name:
            return serializer
    known = ", ".join(s.name for s in REGISTRY)
    raise SerializationError(
        f"no serializer named {name!r} in this SDK (known: {known}); the artifact was written by a newer "
        f"or differently configured cellar: install the same cellar version and libraries"
    )


def serialize(obj: Any) -> tuple[str, bytes]:
    """(serializer name, bytes) for `obj`: the first serializer that claims it and succeeds."""
    failures = []
    for serializer in REGISTRY:
        if not serializer.claims(obj):
            continue
        try:
            return serializer.name, serializer.dumps(obj)
        except Exception as exc:  # noqa: BLE001 - any failure means "let the next one try"
            failures.append((serializer.name, exc))
    name, exc = failures[-1]
    raise SerializationError(f"a {type_name(obj)} cannot be serialized: {_reason(exc)}. {_hint(obj)}") from exc


def deserialize(name: str, data: bytes) -> Any:
    serializer = get_serializer(name)
    try:
        return serializer.loads(data)
    except ImportError as exc:
        raise SerializationError(
            f"this value was stored with the '{name}' serializer, which needs a package this environment lacks "
            f"({exc}); install it where the pipeline runs"
        ) from exc


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _hint(obj: Any) -> str:
    if type(obj).__name__ in {"generator", "coroutine", "async_generator"}:
        return "Pass a list instead (list(...)), or create the generator in the step that uses it."
    if type(obj).__name__ == "function" and getattr(obj, "__name__", "") == "<lambda>":
        return "Replace the lambda by a function defined with def (in a 'functions' cell)."
    return (
        "Values that hold an open connection, file, lock or thread cannot cross a step boundary: "
        "create them again in the step that uses them (e.g. in a 'functions' cell), or pass what "
        "they point to (a path, a URL, a query) instead."
    )


def check_values(namespace: dict[str, Any], names: list[str] | tuple[str, ...] | set[str]) -> dict[str, dict]:
    """Try-serialize each named live value, as a notebook kernel does before a promote.

    Returns `{name: {"ok": bool, "type": str, "size": int | None, "error": str | None}}`, the
    `kernel_values` the compiler takes. Names absent from the namespace (a cell not run yet)
    are left out: nothing can be said about them. Never raises.
    """
    report: dict[str, dict] = {}
    for name in sorted(set(names)):
        if name not in namespace:
            continue
        value = namespace[name]
        try:
            kind = type_name(value)
        except Exception:  # noqa: BLE001 - a hostile __class__ must not break the check
            kind = "?"
        try:
            _, data = serialize(value)
        except BaseException as exc:  # noqa: BLE001 - includes odd __reduce__ raising SystemExit & co.
            if isinstance(exc, KeyboardInterrupt):
                raise
            report[name] = {"ok": False, "type": kind, "size": None, "error": str(exc)}
        else:
            report[name] = {"ok": True, "type": kind, "size": len(data), "error": None}
    return report
