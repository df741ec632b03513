"""Turn parsed search clauses and orderings into Django querysets over runs.

Metrics compare on the latest value; params and tags on their value. One clause
drives the search: the most selective-looking equality (a param or tag before a
metric) becomes an INNER JOIN, which its index answers directly: `(key, SUBSTR(value,
1, 100), run)` for params and tags, `(key, value)` for latest metrics. Every other
clause is an EXISTS probe on the `(run, key)` unique index. PostgreSQL plans joins
and EXISTS alike from its statistics; SQLite has none unless someone runs ANALYZE,
and without this shape it would start from a metric's value range, or walk every
run of the experiment, probing each. A range (`metrics.acc > 0.9`) never drives:
the value indexes span every experiment, while the experiment's own runs are one
index range away. Orderings by a metric, param or tag are LEFT JOINs.

A param or tag value can be 8,000 characters, more than a PostgreSQL b-tree entry
may hold, so the value indexes keep a prefix and an equality compares that prefix
(and, for a long value, the whole value too).
"""

from __future__ import annotations

from django.db.models import Exists, F, FilteredRelation, OuterRef, Q, QuerySet
from django.db.models.lookups import Exact

from cellar_server.tracking.models import VALUE_PREFIX, LatestMetric, Param, Run, RunTag, ValuePrefix
from cellar_server.tracking.search import document_queries, documents
from cellar_server.tracking.search.parser import Clause, OrderBy, SearchSyntaxError, like_regex

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
_RELATIONS = {"metric": "latest_metrics", "param": "params", "tag": "tags"}
_MODELS = {"metric": LatestMetric, "param": Param, "tag": RunTag}


def condition(field: str, op: str, value) -> Q:
    if op in ("LIKE", "ILIKE"):
        return Q(**{f"{field}__{'regex' if op == 'LIKE' else 'iregex'}": like_regex(value)})
    if op == "!=":
        return ~Q(**{field: value})
    if op == "IN":
        return Q(**{f"{field}__in": list(value)})
    if op == "NOT IN":
        return ~Q(**{f"{field}__in": list(value)})
    return Q(**{f"{field}__{_LOOKUPS[op]}": value})


def _value_equals(field: str, value: str) -> Q:
    """`field = value`, said so that the (key, SUBSTR(value, 1, 100), run) index answers it: a value
    shorter than the prefix equals the column exactly when the column's prefix equals it."""
    prefix = Exact(ValuePrefix(field), value[:VALUE_PREFIX])
    return Q(prefix) if len(value) < VALUE_PREFIX else Q(prefix) & Q(**{field: value})


def _exists(clause: Clause) -> Q:
    rows = _MODELS[clause.kind].objects.filter(run=OuterRef("pk"), key=clause.key)
    if clause.op == "IS NULL":
        return ~Exists(rows)
    if clause.op == "IS NOT NULL":
        return Exists(rows)
    if clause.kind == "metric":
        rows = rows.filter(is_nan=False)  # NaN is never <, >, = anything (as in MLflow's SQL store)
    elif clause.op == "=":
        return Exists(rows.filter(_value_equals("value", clause.value)))
    return Exists(rows.filter(condition("value", clause.op, clause.value)))


def _join(queryset: QuerySet[Run], clause: Clause) -> QuerySet[Run]:
    relation = _RELATIONS[clause.kind]
    alias = "_driver"
    queryset = queryset.alias(**{alias: FilteredRelation(relation, condition=Q(**{f"{relation}__key": clause.key}))})
    # Naming the key again (the join's ON already has it) makes the join INNER: an expression
    # alone, like SUBSTR(value, 1, 100) = '…', would leave a LEFT JOIN, which SQLite cannot reorder.
    has_key = Q(**{f"{alias}__key": clause.key})
    if clause.kind == "metric":
        return queryset.filter(has_key, Q(**{f"{alias}__is_nan": False}), Q(**{f"{alias}__value": clause.value}))
    return queryset.filter(has_key, _value_equals(f"{alias}__value", clause.value))


_DRIVER_RANK = {"param": 0, "tag": 0, "metric": 1}


def _driver(clauses: list[Clause]) -> Clause | None:
    """The clause to start from: an equality on a param or tag, else on a metric, else none."""
    equalities = [c for c in clauses if c.op == "=" and c.kind in _DRIVER_RANK]
    return min(equalities, key=lambda c: _DRIVER_RANK[c.kind], default=None)


def filter_runs(queryset: QuerySet[Run], clauses: list[Clause]) -> QuerySet[Run]:
    """On PostgreSQL params, tags and metrics are read from the run's search documents
    (search/document_queries.py); elsewhere from the tables, as below."""
    use_documents = documents.enabled()
    driver = None if use_documents else _driver(clauses)
    for clause in clauses:
        if clause.kind == "attribute":
            queryset = queryset.filter(condition(_ATTRIBUTE_FIELDS[clause.key], clause.op, clause.value))
        elif clause.kind not in _RELATIONS:
            raise SearchSyntaxError(
                "Searching runs by dataset is not supported yet: Cellar does not record dataset inputs."
            )
        elif use_documents:
            queryset = queryset.filter(document_queries.condition(clause))
        elif clause is driver:
            queryset = _join(queryset, clause)
        else:
            queryset = queryset.filter(_exists(clause))
    return queryset


def order_runs(queryset: QuerySet[Run], orders: list[OrderBy]) -> QuerySet[Run]:
    """Order as MLflow does: the given keys (missing values last, and NaN metrics after numbers),
    then start_time DESC, run_id."""
    expressions = []
    use_documents = documents.enabled()
    for i, order in enumerate(orders):
        if order.kind == "attribute":
            field = F(_ATTRIBUTE_FIELDS[order.key])
        elif use_documents:
            expressions += document_queries.order_expressions(order)
            continue
        else:
            relation = _RELATIONS[order.kind]
            alias = f"_order_{i}"
            queryset = queryset.alias(
                **{alias: FilteredRelation(relation, condition=Q(**{f"{relation}__key": order.key}))}
            )
            if order.kind == "metric":
                expressions.append(F(f"{alias}__is_nan").asc(nulls_last=True))
            field = F(f"{alias}__value")
        expressions.append(field.asc(nulls_last=True) if order.ascending else field.desc(nulls_last=True))
    expressions += [F("start_time").desc(), F("run_uuid").asc()]
    return queryset.order_by(*expressions)
