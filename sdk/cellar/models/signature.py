"""Model signatures in MLflow's JSON shape, inferred from data and enforced on requests.

A signature is `{"inputs": "[{\"type\": \"double\", \"name\": \"a\", \"required\": true}, …]",
"outputs": …}` (column specs; MLflow also writes tensor specs). `Signature.validate` takes any
of MLflow's request shapes (`dataframe_records`, `dataframe_split`, `inputs`/`instances`, a
bare list of records, a dict of columns) and either returns the rows as columns coerced to
the declared types or raises `SignatureError` naming every offending field at once.

Validation is plain Python over the rows (no pandas): the serve process calls it on every
request and a one-row DataFrame costs more than the model call it guards.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# MLflow's column types. A value passes when it is an instance of the listed Python types
# (bool is excluded from the numeric ones: True is not a measurement).
COLUMN_TYPES = ("boolean", "integer", "long", "float", "double", "string", "binary", "datetime")
_NUMERIC_FLOAT = frozenset({"float", "double"})
_NUMERIC_INT = frozenset({"integer", "long"})


class SignatureError(ValueError):
    """A payload does not match the signature. `fields` names every offending field."""

    def __init__(self, message: str, *, fields: Sequence[str] = (), problems: Sequence[dict] = ()):
        super().__init__(message)
        self.message = message
        self.fields = list(fields)
        # [{"field": "age", "problem": "missing" | "extra" | "type" | "null", "detail": "…"}]
        self.problems = list(problems)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "fields": self.fields, "problems": self.problems}


@dataclass(frozen=True)
class ColSpec:
    type: str
    name: str | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            out["name"] = self.name
        out["required"] = self.required
        return out


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "tensor", "tensor-spec": {"dtype": self.dtype, "shape": list(self.shape)}}
        if self.name is not None:
            out["name"] = self.name
        return out


Spec = ColSpec | TensorSpec


def _spec_from_dict(raw: Mapping[str, Any]) -> Spec:
    kind = raw.get("type")
    if kind == "tensor":
        tensor = raw.get("tensor-spec") or {}
        return TensorSpec(str(tensor.get("dtype", "float64")), tuple(tensor.get("shape") or (-1,)), raw.get("name"))
    if kind not in COLUMN_TYPES:
        raise ValueError(f"unknown column type {kind!r} in a signature (known: {', '.join(COLUMN_TYPES)})")
    return ColSpec(kind, raw.get("name"), bool(raw.get("required", True)))


def _schema_from(raw: Any) -> list[Spec] | None:
    if raw in (None, "", "null"):
        return None
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [_spec_from_dict(item) for item in items]


@dataclass
class ValidatedInput:
    """Rows that passed validation, as columns in signature order plus any allowed extras."""

    columns: dict[str, list]
    extras: dict[str, list] = field(default_factory=dict)
    n_rows: int = 0

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.columns, copy=False)


class Signature:
    """Inputs and outputs: lists of ColSpec/TensorSpec (or None when undeclared)."""

    def __init__(self, inputs: list[Spec] | None = None, outputs: list[Spec] | None = None):
        self.inputs = inputs
        self.outputs = outputs
        self._names = [s.name for s in inputs or [] if isinstance(s, ColSpec) and s.name is not None]
        self._by_name = {s.name: s for s in inputs or [] if isinstance(s, ColSpec) and s.name is not None}

    # --- MLflow's JSON shape ---------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """As in an MLmodel file: each schema a JSON string, `params` null."""
        return {
            "inputs": json.dumps([s.to_dict() for s in self.inputs]) if self.inputs is not None else None,
            "outputs": json.dumps([s.to_dict() for s in self.outputs]) if self.outputs is not None else None,
            "params": None,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Signature | None:
        if not raw:
            return None
        return cls(_schema_from(raw.get("inputs")), _schema_from(raw.get("outputs")))

    def input_names(self) -> list[str]:
        return list(self._names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Signature(inputs={self.inputs!r}, outputs={self.outputs!r})"

    # --- enforcement ---------------------------------------------------------

    def validate(self, payload: Any, *, extras: Iterable[str] = ()):
        """The payload as a pandas DataFrame of the signature's columns, or SignatureError."""
        return self.validate_columns(payload, extras=extras).frame()

    def validate_columns(self, payload: Any, *, extras: Iterable[str] = ()) -> ValidatedInput:
        """Check every row; return the columns (signature order) without building a DataFrame.

        `extras` are field names allowed beyond the signature (such as `unit_id` for A/B
        assignment); they come back in `.extras`, unchecked.
        """
        allowed_extra = frozenset(extras)
        names, rows = _rows_of(payload)
        if not self._by_name:  # no column signature: pass the rows through unchecked
            columns = {name: [row.get(name) for row in rows] for name in names if name not in allowed_extra}
            extra_cols = {name: [row.get(name) for row in rows] for name in allowed_extra if name in names}
            return ValidatedInput(columns, extra_cols, len(rows))
        problems: list[dict] = []
        seen: set[str] = set()

        def problem(name: str, kind: str, detail: str) -> None:
            if (name, kind) not in seen:
                seen.add((name, kind))
                problems.append({"field": name, "problem": kind, "detail": detail})

        for name in names:
            if name not in self._by_name and name not in allowed_extra:
                problem(name, "extra", f"'{name}' is not an input of this model")
        columns: dict[str, list] = {}
        for name in self._names:
            spec = self._by_name[name]
            values = []
            for index, row in enumerate(rows):
                value = row.get(name, _MISSING)
                if value is _MISSING or value is None or (isinstance(value, float) and math.isnan(value)):
                    if spec.required:
                        kind = "missing" if value is _MISSING else "null"
                        problem(name, kind, f"'{name}' is required ({spec.type}); row {index} has no value")
                    values.append(None)
                    continue
                coerced = _coerce(spec.type, value)
                if coerced is _BAD:
                    problem(name, "type", f"'{name}' must be {spec.type}; row {index} has {_describe(value)}")
                values.append(coerced)
            columns[name] = values
        if problems:
            fields = list(dict.fromkeys(p["field"] for p in problems))
            raise SignatureError(
                "The input does not match the model's signature: "
                + "; ".join(p["detail"] for p in problems[:20])
                + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""),
                fields=fields,
                problems=problems,
            )
        extra_cols = {name: [row.get(name) for row in rows] for name in allowed_extra if name in names}
        return ValidatedInput(columns, extra_cols, len(rows))


_MISSING = object()
_BAD = object()


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def _coerce(kind: str, value: Any) -> Any:
    """The value as the column type, or _BAD. Ints widen to floats; nothing else converts."""
    if kind in _NUMERIC_FLOAT:
        if isinstance(value, float):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return float(value.replace("Infinity", "inf"))
        return _BAD
    if kind in _NUMERIC_INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _BAD
    if kind == "string":
        return value if isinstance(value, str) else _BAD
    if kind == "boolean":
        return value if isinstance(value, bool) else _BAD
    if kind == "binary":
        return value if isinstance(value, (str, bytes)) else _BAD
    if kind == "datetime":
        return value if isinstance(value, str) else _BAD
    return value


def _rows_of(payload: Any) -> tuple[list[str], list[Mapping[str, Any]]]:
    """(field names in first-seen order, rows as mappings) from any accepted request shape."""
    if isinstance(payload, Mapping):
        if "dataframe_records" in payload:
            return _records(payload["dataframe_records"])
        if "dataframe_split" in payload:
            return _split(payload["dataframe_split"])
        for key in ("inputs", "instances"):
            if key in payload:
                inner = payload[key]
                if isinstance(inner, Mapping):
                    return _column_dict(inner)
                return _records(inner)
        return _column_dict(payload)
    if isinstance(payload, list):
        return _records(payload)
    if hasattr(payload, "to_dict") and hasattr(payload, "columns"):  # a pandas DataFrame
        return _records(payload.to_dict(orient="records"))
    raise SignatureError(
        "Send rows as a list of records, {'dataframe_records': [...]}, {'dataframe_split': {'columns', 'data'}}"
        " or {'inputs': {column: [values]}}.",
        fields=[],
    )


def _records(rows: Any) -> tuple[list[str], list[Mapping[str, Any]]]:
    if isinstance(rows, Mapping):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise SignatureError("Records must be a list of JSON objects, one per row.", fields=[])
    if len(rows) == 1:
        return list(rows[0]), rows
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return list(names), rows


def _split(split: Any) -> tuple[list[str], list[Mapping[str, Any]]]:
    if not isinstance(split, Mapping) or not isinstance(split.get("data"), list):
        raise SignatureError("'dataframe_split' needs 'columns' and 'data' (a list of rows).", fields=[])
    columns = split.get("columns")
    data = split["data"]
    if not isinstance(columns, list):
        raise SignatureError("'dataframe_split' needs 'columns': the list of column names.", fields=[])
    rows = []
    for index, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise SignatureError(
                f"'dataframe_split' row {index} has {len(values) if isinstance(values, list) else 'no'} values "
                f"for {len(columns)} columns.",
                fields=[],
            )
        rows.append(dict(zip(columns, values, strict=True)))
    return [str(c) for c in columns], rows


def _column_dict(columns: Mapping[str, Any]) -> tuple[list[str], list[Mapping[str, Any]]]:
    names = list(columns)
    lists = [v if isinstance(v, list) else [v] for v in columns.values()]
    lengths = {len(v) for v in lists}
    if len(lengths) > 1:
        raise SignatureError(
            "Columns have different lengths: " + ", ".join(f"{n}={len(v)}" for n, v in zip(names, lists, strict=True)),
            fields=names,
        )
    n_rows = lengths.pop() if lengths else 0
    rows = [{name: values[i] for name, values in zip(names, lists, strict=True)} for i in range(n_rows)]
    return names, rows


# --- inference ---------------------------------------------------------------------------

_NUMPY_KINDS = {"b": "boolean", "i": "long", "u": "long", "f": "double", "U": "string", "S": "binary", "M": "datetime"}


def _column_type(values: Any) -> str:
    dtype = getattr(values, "dtype", None)
    if dtype is not None and dtype.kind != "O":
        if dtype.kind == "i" and dtype.itemsize <= 4:
            return "integer"
        if dtype.kind == "f" and dtype.itemsize <= 4:
            return "float"
        return _NUMPY_KINDS.get(dtype.kind, "string")
    sample = [v for v in list(values)[:1000] if v is not None]
    if not sample:
        return "string"
    if all(isinstance(v, bool) for v in sample):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in sample):
        return "long"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sample):
        return "double"
    if all(isinstance(v, bytes) for v in sample):
        return "binary"
    return "string"


def _schema_of(data: Any, prefix: str) -> list[Spec]:
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # DataFrame
        return [ColSpec(_column_type(data[c]), str(c)) for c in data.columns]
    if hasattr(data, "name") and hasattr(data, "dtype") and getattr(data, "ndim", 1) == 1:  # Series
        return [ColSpec(_column_type(data), str(data.name) if data.name is not None else None)]
    if isinstance(data, Mapping):
        return [ColSpec(_column_type(v if isinstance(v, list) else [v]), str(k)) for k, v in data.items()]
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        names: dict[str, None] = {}
        for row in data:
            names.update(dict.fromkeys(row))
        return [ColSpec(_column_type([r.get(n) for r in data]), str(n)) for n in names]
    shape = getattr(data, "shape", None)
    dtype = getattr(data, "dtype", None)
    if shape is not None and dtype is not None:
        if len(shape) == 2 and prefix == "in":  # a 2-D feature matrix: one column per feature
            return [ColSpec(_column_type(data[:, i]), f"x{i}") for i in range(shape[1])]
        return [TensorSpec(str(dtype), (-1, *shape[1:]))]
    if isinstance(data, list):
        return [ColSpec(_column_type(data))]
    raise TypeError(f"cannot infer a schema from {type(data).__name__}")


def infer_signature(model_input: Any, model_output: Any = None) -> Signature:
    """A signature from example inputs (DataFrame, records, dict of columns, 2-D array) and outputs."""
    inputs = _schema_of(model_input, "in")
    outputs = _schema_of(model_output, "out") if model_output is not None else None
    return Signature(inputs, outputs)
