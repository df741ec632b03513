"""Team secrets, connections and data sets from notebooks and pipeline steps (docs/data.md).

    password = cellar.secret("warehouse-password")
    engine = cellar.connect("warehouse")              # SQLAlchemy engine / boto3 client / requests session
    df = cellar.dataset("warehouse", query="select * from churn")
    raw = cellar.dataset("s3://bucket/train.csv", connection="lake", snapshot=True)

Imports stay light: SQLAlchemy, boto3 and pandas load on first use.
"""

from __future__ import annotations

from typing import Any


def secret(name: str) -> str:
    """The value of the team secret `name` (a step must declare it: docs/data.md)."""
    from cellar.data.remote import secret_value

    return secret_value(name)


def connect(name: str) -> Any:
    """A ready client for the team connection `name`: SQLAlchemy engine, boto3 S3 client or requests session."""
    from cellar.data.connections import connect as _connect

    return _connect(name)


def dataset(source: str, **kwargs: Any) -> Any:
    """Read a data set and record it as an input of the active run. See cellar.data.datasets.dataset."""
    from cellar.data.datasets import dataset as _dataset

    return _dataset(source, **kwargs)


__all__ = ["connect", "dataset", "secret"]
