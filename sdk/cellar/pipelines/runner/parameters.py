"""Run parameters: defaults overridden by the run's values, each parsed by its declared type."""

from __future__ import annotations

import json
from typing import Any

from cellar.pipelines.spec import Parameter, PipelineSpec

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParameterError(ValueError):
    """A run parameter is unknown or its value does not fit the parameter's type."""


def parse_assignments(pairs: list[str] | None) -> dict[str, str]:
    """`["alpha=0.1", "name=x=y"]` -> `{"alpha": "0.1", "name": "x=y"}` (from `-p key=value`)."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"'{pair}' is not key=value: write the parameter as -p name=value")
        values[key.strip()] = value
    return values


def resolve_parameters(spec: PipelineSpec, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values a run uses: each parameter's default, overridden by `overrides`.

    Strings (from the command line) are parsed by the parameter's declared type; other
    values are checked against it. An unknown name is an error listing the known ones.
    """
    declared = {p.name: p for p in spec.parameters}
    values = {p.name: p.default for p in spec.parameters}
    for name, raw in (overrides or {}).items():
        parameter = declared.get(name)
        if parameter is None:
            known = ", ".join(sorted(declared)) or "none: the notebook has no parameters cell"
            raise ParameterError(f"unknown parameter '{name}' (known parameters: {known})")
        values[name] = coerce(parameter, raw)
    return values


def coerce(parameter: Parameter, raw: Any) -> Any:
    kind = parameter.type
    if isinstance(raw, str) and kind != "str":
        return _parse(parameter, raw)
    if kind == "int" and type(raw) is int:
        return raw
    if kind == "float" and type(raw) in (int, float):
        return float(raw)
    if kind == "bool" and type(raw) is bool:
        return raw
    if kind == "str" and isinstance(raw, str):
        return raw
    if kind == "list" and isinstance(raw, list | tuple):
        return list(raw)
    if kind == "dict" and isinstance(raw, dict):
        return dict(raw)
    if kind == "none":
        return raw
    raise ParameterError(
        f"parameter '{parameter.name}' is a {kind} (default {parameter.default!r}); got {type(raw).__name__} {raw!r}"
    )


def _parse(parameter: Parameter, text: str) -> Any:
    kind, name = parameter.type, parameter.name
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if kind in ("list", "dict"):
            value = json.loads(text)
            if not isinstance(value, list if kind == "list" else dict):
                raise ValueError(text)
            return value
        if kind == "none":
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text
    except ValueError:
        pass
    else:
        raise ParameterError(f"parameter '{name}' has an unknown type {kind!r}")
    examples = {
        "int": "an integer, e.g. 42",
        "float": "a number, e.g. 0.5",
        "bool": "true or false",
        "list": 'a JSON list, e.g. [1, 2] or \'["a", "b"]\'',
        "dict": "a JSON object, e.g. '{\"depth\": 3}'",
    }
    raise ParameterError(f"parameter '{name}' expects {examples.get(kind, kind)}; got {text!r}")
