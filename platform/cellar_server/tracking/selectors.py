"""Reads for experiment tracking: searches, metric histories, run details."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from django.db.models import F, Prefetch, QuerySet

from cellar_server.core.scoping import team_scope
from cellar_server.teams.models import Team
from cellar_server.tracking import validation as v
from cellar_server.tracking.errors import invalid
from cellar_server.tracking.models import (
    ACTIVE,
    DELETED,
    Experiment,
    LatestMetric,
    Metric,
    Param,
    Run,
    RunTag,
)
from cellar_server.tracking.search import queries
from cellar_server.tracking.search.parser import SearchSyntaxError, parse_filter, parse_order_by

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


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    next_page_token: str | None


def run_search_queryset(
    *,
    team: Team,
    experiment_numbers: list[int] | None,
    filter_string: str = "",
    order_by: list[str] | None = None,
    view_type: str | None = None,
) -> QuerySet[Run]:
    """The one search path, shared by the MLflow API and the dashboards. Raises on bad syntax."""
    try:
        clauses = parse_filter(filter_string)
        orders = parse_order_by(order_by)
    except SearchSyntaxError as exc:
        raise invalid(f"Error on parsing filter: {exc}") from None
    with team_scope(team.id):
        queryset = Run.objects.filter(lifecycle_stage__in=_lifecycles(view_type))
    if experiment_numbers is not None:
        queryset = queryset.filter(experiment__number__in=experiment_numbers)
    try:
        queryset = queries.filter_runs(queryset, clauses)
    except SearchSyntaxError as exc:
        raise invalid(str(exc)) from None
    return queries.order_runs(queryset, orders)


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
    max_results = v.parse_int(max_results, "max_results", default=1000)
    if not 0 < max_results <= MAX_RUNS_PER_PAGE:
        raise invalid(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at most "
            f"{MAX_RUNS_PER_PAGE}, and positive."
        )
    numbers = [v.parse_int(e, "experiment_ids", required=True) for e in experiment_ids]
    queryset = run_search_queryset(
        team=team, experiment_numbers=numbers, filter_string=filter_string, order_by=order_by, view_type=view_type
    )
    offset = decode_page_token(page_token)
    page = list(runs_with_data(queryset)[offset : offset + max_results + 1])
    has_more = len(page) > max_results
    return RunPage(page[:max_results], encode_page_token(offset + max_results) if has_more else None)


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


def _experiment_filter(queryset: QuerySet[Experiment], filter_string: str) -> QuerySet[Experiment]:
    if not filter_string:
        return queryset
    # Experiments use the same clause shapes; their attribute keys differ from runs'.
    for part in re.split(r"\s+AND\s+", filter_string.strip(), flags=re.IGNORECASE):
        match = re.match(
            r"^\s*(?:attributes?\.|attr\.)?(?P<key>name|creation_time|last_update_time|experiment_id)\s*"
            r"(?P<op>=|!=|<=|>=|<|>|LIKE|ILIKE|IN)\s*(?P<value>.+?)\s*$|"
            r"^\s*tags?\.(?P<tag>`[^`]+`|\"[^\"]+\"|[\w.\-/: ]+?)\s*(?P<top>=|!=|LIKE|ILIKE)\s*'(?P<tvalue>.*)'\s*$",
            part,
            flags=re.IGNORECASE,
        )
        if match is None:
            raise invalid(f"Invalid experiment filter clause: '{part}'.")
        if match.group("tag"):
            key = match.group("tag").strip('`"')
            condition = queries._condition("value", match.group("top").upper(), match.group("tvalue"))
            queryset = queryset.filter(
                tags__in=queryset.model.tags.rel.related_model.objects.filter(condition, key=key)
            )
            continue
        field, op, raw = _EXPERIMENT_FIELDS[match.group("key")], match.group("op").upper(), match.group("value")
        if op == "IN":
            values = [x.strip().strip("'\"") for x in raw.strip("()").split(",")]
            queryset = queryset.filter(**{f"{field}__in": [int(x) for x in values] if field == "number" else values})
            continue
        value = raw.strip("'\"") if field == "name" else v.parse_int(raw.strip("'\""), match.group("key"))
        queryset = queryset.filter(queries._condition(field, op, value))
    return queryset


def _experiment_order(order_by: list[str] | None) -> list:
    result = []
    for item in order_by or []:
        parts = item.split()
        key = parts[0].removeprefix("attributes.").removeprefix("attribute.")
        if key not in _EXPERIMENT_FIELDS or len(parts) > 2:
            raise invalid(f"Invalid order_by clause '{item}'.")
        ascending = len(parts) == 1 or parts[1].upper() == "ASC"
        field = F(_EXPERIMENT_FIELDS[key])
        result.append(field.asc() if ascending else field.desc())
    return result + [F("last_update_time").desc(), F("number").asc()] if not result else result + [F("number").asc()]


def metric_history(*, run: Run, key: str, page_token: str | None = None, max_results: int | None = None):
    if not key:
        raise invalid("Missing value for required parameter 'metric_key'.")
    offset = decode_page_token(page_token)
    limit = v.parse_int(max_results, "max_results", default=None)
    queryset = (
        Metric.objects.filter(run=run, key=key)
        .order_by("step", "timestamp", "value")
        .values_list("key", "value", "is_nan", "timestamp", "step")
    )
    if limit is None:
        return list(queryset[offset:]), None
    page = list(queryset[offset : offset + limit + 1])
    return page[:limit], encode_page_token(offset + limit) if len(page) > limit else None


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
