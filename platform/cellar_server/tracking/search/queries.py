"""Turn parsed search clauses and orderings into Django querysets over runs.

Metrics compare on the latest value; params and tags on their value. Each
clause becomes an EXISTS subquery (or an annotation for ordering), which both
PostgreSQL and SQLite answer from the (key, run) indexes.
"""

from __future__ import annotations

import re

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery

from cellar_server.tracking.models import LatestMetric, Param, Run, RunTag
from cellar_server.tracking.search.parser import Clause, OrderBy, SearchSyntaxError

_ATTRIBUTE_FIELDS = {
    "run_id": "run_uuid",
    "run_name": "name",
    "status": "status",
    "user_id": "user_name",
    "artifact_uri": "artifact_uri",
    "start_time": "start_time",
    "end_time": "end_time",
}
_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "LIKE": "like", "ILIKE": "ilike"}


def _like_to_lookup(pattern: str, case_sensitive: bool) -> tuple[str, str]:
    """SQL LIKE ('%' any run, '_' one char) as a Django regex lookup, portable across databases."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return ("regex" if case_sensitive else "iregex"), f"^{regex}$"


def condition(field: str, op: str, value) -> Q:
    if op in ("LIKE", "ILIKE"):
        lookup, regex = _like_to_lookup(value, case_sensitive=op == "LIKE")
        return Q(**{f"{field}__{lookup}": regex})
    if op == "!=":
        return ~Q(**{field: value})
    if op == "IN":
        return Q(**{f"{field}__in": list(value)})
    if op == "NOT IN":
        return ~Q(**{f"{field}__in": list(value)})
    return Q(**{f"{field}__{_LOOKUPS[op]}": value})


def _apply(queryset: QuerySet[Run], clause: Clause) -> QuerySet[Run]:
    if clause.kind == "attribute":
        return queryset.filter(condition(_ATTRIBUTE_FIELDS[clause.key], clause.op, clause.value))
    if clause.kind == "metric":
        # NaN is never <, >, = anything (as in MLflow's SQL store).
        points = LatestMetric.objects.filter(run=OuterRef("pk"), key=clause.key, is_nan=False)
        return queryset.filter(Exists(points.filter(condition("value", clause.op, clause.value))))
    if clause.kind in ("param", "tag"):
        model = Param if clause.kind == "param" else RunTag
        rows = model.objects.filter(run=OuterRef("pk"), key=clause.key)
        if clause.op == "IS NULL":
            return queryset.filter(~Exists(rows))
        if clause.op == "IS NOT NULL":
            return queryset.filter(Exists(rows))
        return queryset.filter(Exists(rows.filter(condition("value", clause.op, clause.value))))
    raise SearchSyntaxError("Searching runs by dataset is not supported yet: Cellar does not record dataset inputs.")


def filter_runs(queryset: QuerySet[Run], clauses: list[Clause]) -> QuerySet[Run]:
    for clause in clauses:
        queryset = _apply(queryset, clause)
    return queryset


def order_runs(queryset: QuerySet[Run], orders: list[OrderBy]) -> QuerySet[Run]:
    """Order as MLflow does: the given keys (missing values last), then start_time DESC, run_id."""
    expressions = []
    for i, order in enumerate(orders):
        if order.kind == "attribute":
            field = F(_ATTRIBUTE_FIELDS[order.key])
        else:
            alias = f"_order_{i}"
            if order.kind == "metric":
                source = LatestMetric.objects.filter(run=OuterRef("pk"), key=order.key).values("value")[:1]
            else:
                model = Param if order.kind == "param" else RunTag
                source = model.objects.filter(run=OuterRef("pk"), key=order.key).values("value")[:1]
            queryset = queryset.annotate(**{alias: Subquery(source)})
            field = F(alias)
        expressions.append(field.asc(nulls_last=True) if order.ascending else field.desc(nulls_last=True))
    expressions += [F("start_time").desc(), F("run_uuid").asc()]
    return queryset.order_by(*expressions)
