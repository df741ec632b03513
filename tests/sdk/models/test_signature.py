"""Signatures: inference in MLflow's shape and validation of every request shape serve accepts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cellar.models import ColSpec, Signature, SignatureError, infer_signature


@pytest.fixture
def signature() -> Signature:
    frame = pd.DataFrame({"age": [30, 41], "income": [1.5, 2.5], "city": ["paris", "rome"]})
    return infer_signature(frame, np.array([0, 1]))


def test_inferred_types_and_mlflow_json_shape(signature: Signature) -> None:
    raw = signature.to_dict()
    assert json.loads(raw["inputs"]) == [
        {"type": "long", "name": "age", "required": True},
        {"type": "double", "name": "income", "required": True},
        {"type": "string", "name": "city", "required": True},
    ]
    assert json.loads(raw["outputs"]) == [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]
    assert Signature.from_dict(raw) == signature


def test_reads_a_signature_the_mlflow_client_wrote() -> None:
    raw = {
        "inputs": '[{"type": "double", "name": "a", "required": true},'
        ' {"type": "long", "name": "b", "required": true}]',
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]',
        "params": None,
    }
    sig = Signature.from_dict(raw)
    assert sig.inputs == [ColSpec("double", "a"), ColSpec("long", "b")]


RECORDS = [{"age": 30, "income": 1.0, "city": "paris"}, {"age": 41, "income": 2, "city": "rome"}]
SPLIT = {"columns": ["age", "income", "city"], "data": [[30, 1.0, "paris"], [41, 2, "rome"]]}
SHAPES = {
    "records": RECORDS,
    "dataframe_records": {"dataframe_records": RECORDS},
    "dataframe_split": {"dataframe_split": SPLIT},
    "inputs_columns": {"inputs": {"age": [30, 41], "income": [1.0, 2], "city": ["paris", "rome"]}},
    "bare_columns": {"age": [30, 41], "income": [1.0, 2], "city": ["paris", "rome"]},
}


@pytest.mark.parametrize("payload", SHAPES.values(), ids=SHAPES.keys())
def test_every_request_shape_gives_the_same_frame(signature: Signature, payload) -> None:
    frame = signature.validate(payload)
    assert list(frame.columns) == ["age", "income", "city"]
    assert frame["income"].tolist() == [1.0, 2.0]  # an int widened to the declared double
    assert frame["age"].tolist() == [30, 41]


def test_one_record_is_one_row(signature: Signature) -> None:
    result = signature.validate_columns({"age": 3, "income": 0.5, "city": "x"})
    assert result.n_rows == 1 and result.columns == {"age": [3], "income": [0.5], "city": ["x"]}


def test_every_offending_field_is_named(signature: Signature) -> None:
    payload = [{"age": "old", "city": 3, "colour": "red"}, {"age": 1.5, "income": 1.0, "city": "x"}]
    with pytest.raises(SignatureError) as err:
        signature.validate(payload)
    problems = {(p["field"], p["problem"]) for p in err.value.problems}
    assert problems == {("colour", "extra"), ("age", "type"), ("income", "missing"), ("city", "type")}
    assert set(err.value.fields) == {"colour", "age", "income", "city"}
    assert "'income' is required" in err.value.message


def test_null_in_required_column_and_booleans_are_not_numbers(signature: Signature) -> None:
    with pytest.raises(SignatureError) as err:
        signature.validate([{"age": True, "income": None, "city": "x"}])
    assert {(p["field"], p["problem"]) for p in err.value.problems} == {("age", "type"), ("income", "null")}


def test_allowed_extras_come_back_separately(signature: Signature) -> None:
    rows = [{"age": 1, "income": 1.0, "city": "x", "unit_id": "u1"}, {"age": 2, "income": 1.0, "city": "y"}]
    result = signature.validate_columns(rows, extras=["unit_id"])
    assert result.extras == {"unit_id": ["u1", None]}
    assert "unit_id" not in result.columns


@pytest.mark.parametrize(
    "payload",
    [
        "just a string",
        {"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}},
        {"inputs": {"age": [1, 2], "income": [1.0]}},
        [1, 2, 3],
    ],
    ids=["string", "split-row-width", "ragged-columns", "list-of-scalars"],
)
def test_malformed_payloads_raise_signature_errors(signature: Signature, payload) -> None:
    with pytest.raises(SignatureError):
        signature.validate_columns(payload)


def test_no_signature_passes_rows_through() -> None:
    result = Signature().validate_columns([{"a": 1}, {"a": "x"}])
    assert result.columns == {"a": [1, "x"]}


def test_infer_from_a_2d_array_names_features() -> None:
    sig = infer_signature(np.zeros((3, 2)), np.zeros(3))
    assert sig.input_names() == ["x0", "x1"]
