"""Reads for experiment tracking: searches, metric histories, run details."""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass, field

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet

from cellar_server.core.scoping import team_scope
from cellar_server.teams.models import Team
from cellar_server.tracking import validation as v
from cellar_server.tracking.errors import invalid
from cellar_server.tracking.models import (
    ACTIVE,
    DELETED,
    Experiment,
    ExperimentTag,
    LatestMetric,
    Metric,
    Param,
    Run,
    RunTag,
)
from cellar_server.tracking.search import documents, prepared, queries
from cellar_server.tracking.search.parser import EXPERIMENTS, SearchSyntaxError, parse_filter, parse_order_by

VIEW_TYPES = {"ACTIVE_ONLY": [ACTIVE], "DELETED_ONLY": [DELETED], "ALL": [ACTIVE, DELETED]}
MAX_RUNS_PER_PAGE = 50000
MAX_HISTORY_PAGE = 25000


def encode_page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page token '{token}'.") from None
    return offset


def _lifecycles(view_type: str | None) -> list[str]:
    view_type = view_type or "ACTIVE_ONLY"
    if view_type not in VIEW_TYPES:
        raise invalid(f"Invalid view type '{view_type}'; use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    return VIEW_TYPES[view_type]


def runs_with_data(queryset: QuerySet[Run]) -> QuerySet[Run]:
    """Runs plus their params, tags and latest metrics in three extra queries, whatever the page size."""
    return queryset.select_related("experiment").prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key")),
        Prefetch("tags", queryset=RunTag.objects.order_by("key")),
        Prefetch("latest_metrics", queryset=LatestMetric.objects.order_by("key")),
    )


@dataclass
class RunData:
    """A run's params, tags and latest metrics as plain rows, sorted by key."""

    params: list[tuple[str, str]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[tuple[str, float, bool, int, int]] = field(default_factory=list)  # key, value, is_nan, ts, step


# Params, tags and latest metrics of a set of runs in one round trip, tagged 0/1/2 by kind.
_RUN_DATA_SQL = """
SELECT 0, run_id, key, value, CAST(NULL AS double precision), CAST(NULL AS boolean), CAST(NULL AS bigint),
       CAST(NULL AS bigint)
  FROM tracking_param WHERE {where}
UNION ALL
SELECT 1, run_id, key, value, NULL, NULL, NULL, NULL FROM tracking_runtag WHERE {where}
UNION ALL
SELECT 2, run_id, key, NULL, value, is_nan, timestamp, step FROM tracking_latestmetric WHERE {where}
ORDER BY 1, 3
"""


def run_data_for(run_ids: list[int]) -> dict[int, RunData]:
    """Params, tags and latest metrics of many runs as plain tuples, sorted by key: one query.

    Plain SQL: a search page reads about a thousand of these rows, and the ORM's per-value
    conversions cost more than the query. The callers resolved the runs within their team."""
    data = {run_id: RunData() for run_id in run_ids}
    if not run_ids:
        return data
    if connection.vendor == "postgresql":  # one array constant, not a hundred to parse and estimate
        where, params = "run_id = ANY(%s::bigint[])", ["{" + ",".join(map(str, run_ids)) + "}"] * 3
    else:
        where, params = "run_id IN (" + ", ".join(["%s"] * len(run_ids)) + ")", run_ids * 3
    sql = _RUN_DATA_SQL.format(where=where)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for kind, run_id, key, text, value, is_nan, timestamp, step in rows:
        if kind == 2:
            data[run_id].metrics.append((key, value, bool(is_nan), timestamp, step))
        elif kind == 0:
            data[run_id].params.append((key, text))
        else:
            data[run_id].tags.append((key, text))
    return data


# The run columns a search page serializes, in this order (serialize.run_info_row reads them).
RUN_INFO_COLUMNS = (
    "pk",
    "run_uuid",
    "name",
    "experiment_id",
    "user_name",
    "status",
    "start_time",
    "end_time",
    "artifact_uri",
    "lifecycle_stage",
)


@dataclass(frozen=True)
class RunPage:
    runs: list[tuple]  # RUN_INFO_COLUMNS
    data: dict[int, RunData]
    experiment_numbers: dict[int, int]  # experiment pk -> its number (MLflow's experiment_id)
    next_page_token: str | None


def _experiments_by_number(team: Team, numbers: list[int]) -> dict[int, int]:
    """{experiment pk: number} of the team's experiments with these numbers."""
    with team_scope(team.id):
        return dict(Experiment.objects.filter(number__in=numbers).values_list("pk", "number"))


def run_search_queryset(
    *,
    team: Team,
    experiment_numbers: list[int] | None,
    filter_string: str = "",
    order_by: list[str] | None = None,
    view_type: str | None = None,
    experiment_ids: list[int] | None = None,
) -> QuerySet[Run]:
    """The one search path, shared by the MLflow API and the dashboards. Raises on bad syntax.

    Runs are filtered on `experiment_id` (given, or a subquery on the numbers), never through a
    join on the experiment, so the (experiment, lifecycle, -start_time) index applies."""
    try:
        clauses = parse_filter(filter_string)
        orders = parse_order_by(order_by)
    except SearchSyntaxError as exc:
        raise invalid(f"Error on parsing filter: {exc}") from None
    with team_scope(team.id):
        queryset = Run.objects.filter(lifecycle_stage__in=_lifecycles(view_type))
        if experiment_ids is None and experiment_numbers is not None:
            experiment_ids = Experiment.objects.filter(number__in=experiment_numbers).values("pk")
    if experiment_ids is not None:
        queryset = queryset.filter(experiment_id__in=experiment_ids)
    try:
        queryset = queries.filter_runs(queryset, clauses)
    except SearchSyntaxError as exc:
        raise invalid(str(exc)) from None
    return queries.order_runs(queryset, orders)


@functools.lru_cache(maxsize=256)
def _run_page_sql(
    team: Team,
    experiment_ids: tuple[int, ...],
    filter_string: str,
    order_by: tuple[str, ...],
    view_type: str | None,
    offset: int,
    limit: int,
) -> tuple[str, tuple]:
    """The SQL of one page of a search, compiled once per distinct search.

    Building and compiling the queryset takes Django about 2.5 ms, more than SQLite takes to
    answer it; a client that pages, polls or repeats a search reuses the text (as SQLAlchemy's
    compiled cache does for MLflow's server). The SQL depends only on these arguments.
    Invalid searches raise, and exceptions are not cached."""
    queryset = run_search_queryset(
        team=team,
        experiment_numbers=None,
        experiment_ids=list(experiment_ids),
        filter_string=filter_string,
        order_by=list(order_by),
        view_type=view_type,
    )
    page = queryset.values_list(*RUN_INFO_COLUMNS)[offset : offset + limit]
    return page.query.sql_with_params()


def run_search(
    *,
    team: Team,
    experiment_ids: list[str],
    filter_string: str = "",
    order_by: list[str] | None = None,
    view_type: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> RunPage:
    """A page of runs as plain rows (no model instances), their data, and the next page's token."""
    max_results = v.parse_int(max_results, "max_results", default=1000)
    if not 0 < max_results <= MAX_RUNS_PER_PAGE:
        raise invalid(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at most "
            f"{MAX_RUNS_PER_PAGE}, and positive."
        )
    numbers = _experiments_by_number(team, [v.parse_int(e, "experiment_ids", required=True) for e in experiment_ids])
    offset = decode_page_token(page_token)
    try:
        sql, params = _run_page_sql(
            team, tuple(sorted(numbers)), filter_string, tuple(order_by or ()), view_type, offset, max_results + 1
        )
    except EmptyResultSet:  # nothing can match (no such experiment, an empty IN): an empty page, not a 500
        return RunPage([], {}, numbers, None)
    page = prepared.fetch_all(sql, params)
    has_more = len(page) > max_results
    page = page[:max_results]
    token = encode_page_token(offset + max_results) if has_more else None
    return RunPage(page, _page_data([row[0] for row in page]), numbers, token)


def _page_data(run_ids: list[int]) -> dict[int, RunData]:
    """A search page's params, tags and metrics: from the runs' search documents where there are
    some (one row per run), else from the tables."""
    if not documents.enabled():
        return run_data_for(run_ids)
    return {run_id: RunData(*parts) for run_id, parts in documents.page_data(run_ids).items()}


def experiment_search(
    *,
    team: Team,
    view_type: str | None,
    max_results: int | None,
    page_token: str | None,
    filter_string: str = "",
    order_by: list[str] | None = None,
) -> tuple[list[Experiment], str | None]:
    from cellar_server.tracking.services.experiments import experiment_ensure_default

    experiment_ensure_default(team=team)
    max_results = v.parse_int(max_results, "max_results", default=1000)
    if not 0 < max_results <= 50000:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results'. It must be at most 50000.")
    with team_scope(team.id):
        queryset = Experiment.objects.filter(lifecycle_stage__in=_lifecycles(view_type))
    queryset = _experiment_filter(queryset, filter_string)
    queryset = queryset.order_by(*_experiment_order(order_by)).prefetch_related("tags")
    offset = decode_page_token(page_token)
    page = list(queryset[offset : offset + max_results + 1])
    more = len(page) > max_results
    return page[:max_results], encode_page_token(offset + max_results) if more else None


_EXPERIMENT_FIELDS = {
    "name": "name",
    "creation_time": "creation_time",
    "last_update_time": "last_update_time",
    "experiment_id": "number",
}


def _experiment_number(value: str) -> int:
    return v.parse_int(value, "experiment_id", required=True)


def _experiment_filter(queryset: QuerySet[Experiment], filter_string: str) -> QuerySet[Experiment]:
    """Experiments are searched with the same grammar as runs, by name, times, id and tags."""
    try:
        clauses = parse_filter(filter_string, EXPERIMENTS)
    except SearchSyntaxError as exc:
        raise invalid(f"Error on parsing filter: {exc}") from None
    for clause in clauses:
        if clause.kind == "tag":
            rows = ExperimentTag.objects.filter(experiment=OuterRef("pk"), key=clause.key)
            if clause.op in ("IS NULL", "IS NOT NULL"):
                queryset = queryset.filter(Exists(rows) if clause.op == "IS NOT NULL" else ~Exists(rows))
            else:
                queryset = queryset.filter(Exists(rows.filter(queries.condition("value", clause.op, clause.value))))
            continue
        value = clause.value
        if clause.key == "experiment_id":
            value = tuple(map(_experiment_number, value)) if isinstance(value, tuple) else _experiment_number(value)
        queryset = queryset.filter(queries.condition(_EXPERIMENT_FIELDS[clause.key], clause.op, value))
    return queryset


def _experiment_order(order_by: list[str] | None) -> list:
    try:
        orders = parse_order_by(order_by, EXPERIMENTS)
    except SearchSyntaxError as exc:
        raise invalid(f"Invalid order_by: {exc}") from None
    result = []
    for order in orders:
        if order.kind != "attribute":
            raise invalid("Experiments are ordered by name, experiment_id, creation_time or last_update_time.")
        field = F(_EXPERIMENT_FIELDS[order.key])
        result.append(field.asc() if order.ascending else field.desc())
    return result + ([F("number").asc()] if result else [F("last_update_time").desc(), F("number").asc()])


def _decode_history_token(token: str | None) -> tuple[int, int, int] | None:
    if not token:
        return None
    try:
        after = json.loads(base64.b64decode(token))["after"]
        step, timestamp, row_id = (int(x) for x in after)
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page token '{token}'.") from None
    return step, timestamp, row_id


def metric_history(*, run: Run, key: str, page_token: str | None = None, max_results: int | None = None):
    """A metric's points in (step, timestamp) order. Pages continue after the last point (keyset),
    so a late page costs what the first does, however long the history."""
    if not key:
        raise invalid("Missing value for required parameter 'metric_key'.")
    limit = v.parse_int(max_results, "max_results", default=None)
    queryset = Metric.objects.filter(run=run, key=key)
    after = _decode_history_token(page_token)
    if after is not None:
        step, timestamp, row_id = after
        queryset = queryset.filter(
            Q(step__gt=step) | Q(step=step, timestamp__gt=timestamp) | Q(step=step, timestamp=timestamp, id__gt=row_id)
        )
    rows = queryset.order_by("step", "timestamp", "id").values_list("value", "is_nan", "timestamp", "step", "id")
    if limit is None:
        return [r[:4] for r in rows], None
    page = list(rows[: limit + 1])
    if len(page) <= limit:
        return [r[:4] for r in page], None
    last = page[limit - 1]
    token = base64.b64encode(json.dumps({"after": [last[3], last[2], last[4]]}).encode()).decode()
    return [r[:4] for r in page[:limit]], token


def metric_history_bulk(
    *, runs: list[Run], key: str, start_step: int | None, end_step: int | None, max_results: int
) -> list[tuple]:
    queryset = Metric.objects.filter(run__in=runs, key=key)
    if start_step is not None:
        queryset = queryset.filter(step__gte=start_step)
    if end_step is not None:
        queryset = queryset.filter(step__lte=end_step)
    return list(
        queryset.order_by("run_id", "step", "timestamp").values_list(
            "run__run_uuid", "key", "value", "is_nan", "timestamp", "step"
        )[:max_results]
    )


def experiment_numbers_for(*, team: Team, numbers: list[int]) -> set[int]:
    with team_scope(team.id):
        return set(Experiment.objects.filter(number__in=numbers).values_list("number", flat=True))
