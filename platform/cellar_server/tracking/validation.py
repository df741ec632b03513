"""Input rules for tracking writes, with MLflow's limits (mlflow/utils/validation.py)."""

from __future__ import annotations

import math
import posixpath
from typing import Any

from cellar.tracking.keys import key_problem
from cellar_server.tracking.errors import invalid

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_BYTES = 1024 * 1024
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000
MAX_EXPERIMENT_NAME_LENGTH = 500


def validate_key(key: Any, what: str) -> str:
    problem = key_problem(key, what)
    if problem is not None:
        raise invalid(problem)
    return key


def validate_value(value: Any, what: str, limit: int) -> str:
    if value is None:
        raise invalid(f"Missing value for required parameter 'value' of the {what}.")
    value = str(value)
    if len(value) > limit:
        raise invalid(f"{what.capitalize()} value is {len(value)} characters; the limit is {limit}.")
    return value


def parse_metric_value(raw: Any, key: str) -> tuple[float, bool]:
    """Return (value, is_nan). Accepts numbers and the proto-JSON strings NaN/Infinity/-Infinity."""
    if isinstance(raw, bool) or raw is None:
        raise invalid(f"Got invalid value {raw!r} for metric '{key}'. Please specify value as a valid double.")
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raise invalid(f"Got invalid value {raw!r} for metric '{key}'. Please specify value as a valid double.")
    if not isinstance(raw, int | float):
        raise invalid(f"Got invalid value {raw!r} for metric '{key}'. Please specify value as a valid double.")
    value = float(raw)
    if math.isnan(value):
        return 0.0, True
    return value, False


def parse_int(raw: Any, name: str, *, default: int | None = None, required: bool = False) -> int | None:
    if raw is None or raw == "":
        if required:
            raise invalid(f"Missing value for required parameter '{name}'.")
        return default
    if isinstance(raw, bool):
        raise invalid(f"Invalid value {raw!r} for parameter '{name}': expected an integer.")
    try:
        value = int(raw)
        if isinstance(raw, float) and raw != value:
            raise ValueError
    except (TypeError, ValueError):
        raise invalid(f"Invalid value {raw!r} for parameter '{name}': expected an integer.") from None
    return value


def normalize_artifact_path(path: str | None) -> str:
    """A relative POSIX path inside the team's artifact tree; traversal and absolute paths are refused."""
    path = (path or "").replace("\\", "/")
    if not path:
        return ""
    if path.startswith("/") or any(part == ".." for part in path.split("/")):
        raise invalid(f"Invalid artifact path: '{path}'. Paths are relative and may not contain '..'.")
    normalized = posixpath.normpath(path)
    return "" if normalized == "." else normalized
