"""MLflow's registry search filters: `<ident> <op> <value>` clauses joined by AND.

Registered models: `name` (=, !=, LIKE, ILIKE, IN) and `tags.<key>` (=, !=, LIKE, ILIKE).
Model versions: also `run_id` (=, !=, IN), `source_path` (=, !=, LIKE, ILIKE) and
`version_number` (=, !=, <, <=, >, >=).
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q, QuerySet

from cellar_server.registry.errors import invalid

_CLAUSE = re.compile(
    r"""\s*(?P<ident>(?:tags?\.)?(?:`[^`]+`|"[^"]+"|[\w.]+))\s*
    (?P<op>!=|<=|>=|=|<|>|\bNOT\s+IN\b|\bIN\b|\bI?LIKE\b)\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\([^)]*\)|-?[\d.]+)\s*(?:\bAND\b|$)""",
    re.IGNORECASE | re.VERBOSE,
)
_STRING_OPS = {"=": "exact", "LIKE": "like", "ILIKE": "ilike"}


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] in "'\"`" and text[-1] == text[0] else text


def _like(value: str) -> str:
    return "^" + re.escape(value).replace("%", ".*").replace("_", ".") + "$"


def _string_q(field: str, op: str, raw: str) -> Q:
    op = op.upper()
    if op in ("IN", "NOT IN"):
        values = [_unquote(v.strip()) for v in raw.strip()[1:-1].split(",") if v.strip()]
        q = Q(**{f"{field}__in": values})
        return ~q if op == "NOT IN" else q
    if not raw or raw[0] not in "'\"":
        raise invalid(f"Invalid filter: the value for '{field}' must be a quoted string.")
    value = _unquote(raw)
    if op == "=":
        return Q(**{field: value})
    if op == "!=":
        return ~Q(**{field: value})
    if op == "LIKE":
        return Q(**{f"{field}__regex": _like(value)})
    if op == "ILIKE":
        return Q(**{f"{field}__iregex": _like(value)})
    raise invalid(f"Invalid comparator '{op}' for '{field}'.")


def apply_filter(queryset: QuerySet, text: str | None, *, versions: bool, name_field: str) -> QuerySet:
    text = (text or "").strip()
    position = 0
    while position < len(text):
        match = _CLAUSE.match(text, position)
        if match is None or match.end() == position:
            raise invalid(f"Invalid filter '{text}': expected <identifier> <comparator> <value> [AND …].")
        position = match.end()
        ident, op, raw = match.group("ident"), match.group("op").upper(), match.group("value")
        queryset = queryset.filter(_clause(ident, op, raw, versions=versions, name_field=name_field))
    return queryset


def _clause(ident: str, op: str, raw: str, *, versions: bool, name_field: str) -> Q:
    lowered = ident.lower()
    if lowered.startswith(("tag.", "tags.")):
        key = _unquote(ident.split(".", 1)[1])
        if op in ("IN", "NOT IN"):
            raise invalid("Tags do not support IN.")
        if op in ("=", "!="):
            # containment, so that a record without the tag counts as "!=" (the client excludes
            # prompts with `tags.mlflow.prompt.is_prompt != 'true'` on every search)
            q = Q(tags__contains={key: _unquote(raw)})
            return q if op == "=" else ~q
        return _string_q(f"tags__{key}", op, raw)
    key = _unquote(ident)
    if key == "name":
        return _string_q(name_field, op, raw)
    if versions and key == "run_id":
        if op not in ("=", "!=", "IN", "NOT IN"):
            raise invalid(f"Invalid comparator '{op}' for run_id (use =, != or IN).")
        return _string_q("run_uuid", op, raw)
    if versions and key == "source_path":
        return _string_q("source", op, raw)
    if versions and key == "version_number":
        try:
            number: Any = int(_unquote(raw))
        except ValueError:
            raise invalid(f"version_number must be an integer, got {raw}.") from None
        lookups = {"=": "", "<": "__lt", "<=": "__lte", ">": "__gt", ">=": "__gte"}
        if op == "!=":
            return ~Q(version=number)
        if op not in lookups:
            raise invalid(f"Invalid comparator '{op}' for version_number.")
        return Q(**{f"version{lookups[op]}": number})
    allowed = "name, tags.<key>" + (", run_id, source_path, version_number" if versions else "")
    raise invalid(f"Invalid attribute key '{ident}' in the filter; supported: {allowed}.")
