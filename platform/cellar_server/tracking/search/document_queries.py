"""Search clauses and orderings over the search documents (PostgreSQL; search/documents.py).

Each clause reads the candidate run's own row: no join, no EXISTS probe. An equality on a
param or tag is a containment (`@>`) that the documents' GIN index answers, so it picks the
candidates; every other clause is a test on the row's document. The semantics are the
table-based ones of search/queries.py, which SQLite uses and the same tests check on both
engines: a run without the key matches no comparison (only IS NULL), metrics compare their
latest value and NaN matches nothing, LIKE is SQL's LIKE ('%', '_'), orderings put missing
values (and NaN metrics) last.

The SQL names the run table `tracking_run`, its alias in every Run queryset's outer query.
"""

from __future__ import annotations

import json

from django.db.models import BooleanField, FloatField, TextField
from django.db.models.expressions import OrderBy as OrderByExpression
from django.db.models.expressions import RawSQL

from cellar_server.tracking.search.parser import Clause, OrderBy, like_regex

_COLUMNS = {
    "metric": "tracking_run.search_metrics",
    "param": "tracking_run.search_params",
    "tag": "tracking_run.search_tags",
}
_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _value(kind: str) -> str:
    """The SQL of a key's value in the document (the key is the statement's first parameter)."""
    if kind == "metric":
        return f"({_COLUMNS[kind]} -> %s ->> 0)::float8"
    return f"({_COLUMNS[kind]} ->> %s)"


def condition(clause: Clause) -> RawSQL:
    column, key, op, value = _COLUMNS[clause.kind], clause.key, clause.op, clause.value
    if op == "IS NULL":
        return _bool(f"NOT ({column} ? %s)", [key])
    if op == "IS NOT NULL":
        return _bool(f"{column} ? %s", [key])
    if clause.kind != "metric" and op == "=":
        return _bool(f"{column} @> %s::jsonb", [json.dumps({key: value})])
    if op in ("LIKE", "ILIKE"):
        return _bool(f"{_value(clause.kind)} {'~' if op == 'LIKE' else '~*'} %s", [key, like_regex(value)])
    if op == "IN":
        return _bool(f"{_value(clause.kind)} = ANY(%s::text[])", [key, list(value)])
    if op == "NOT IN":
        return _bool(f"{_value(clause.kind)} <> ALL(%s::text[])", [key, list(value)])
    if clause.kind == "metric":
        return _bool(f"{_value('metric')} {_SQL_OPS[op]} %s::float8", [key, float(value)])
    return _bool(f"{_value(clause.kind)} {_SQL_OPS[op]} %s", [key, value])


def _bool(sql: str, params: list) -> RawSQL:
    return RawSQL(sql, params, output_field=BooleanField())


def order_expressions(order: OrderBy) -> list[OrderByExpression]:
    """Missing values last; for metrics, NaN (null in the document) after numbers, before missing."""
    if order.kind == "metric":
        value = RawSQL(_value("metric"), [order.key], output_field=FloatField())
    else:
        value = RawSQL(_value(order.kind), [order.key], output_field=TextField())
    expressions = [value.asc(nulls_last=True) if order.ascending else value.desc(nulls_last=True)]
    if order.kind == "metric":
        absent = RawSQL(f"NOT ({_COLUMNS['metric']} ? %s)", [order.key], output_field=BooleanField())
        expressions.append(absent.asc())
    return expressions
