"""Search documents: on PostgreSQL, each run row also carries its params, tags and latest metrics
as JSON, so that a search reads one row per candidate run instead of joining three tables.

Three columns on `tracking_run`, added by migration 0005 and unknown to the Django model (so
that no `save()` of a Run instance can ever write a stale copy back):

* `search_params` `{"key": "value"}` and `search_tags` `{"key": "value"}`, each with a GIN
  index (`jsonb_path_ops`): `params.p1 = 'v3'` is `search_params @> '{"p1": "v3"}'`;
* `search_metrics` `{"key": [value, timestamp, step]}`: the latest value as text ('1e-07',
  'Infinity'; exact, it is PostgreSQL's shortest round-trip output), or null for NaN, which
  no comparison matches and which sorts after every number, as in MLflow.

They are derived data, written in the same transaction as the rows they summarise, by
`merge()` from the tracking services (tracking/services/runs.py), or for a batch of metrics
alone inside its one statement (`merge_returned_metrics`), always as the transaction's last
statement: two writers to one run then take the run's row lock after every other lock
they need, so the documents add no deadlock. A merge adds to what the row holds *when the
update runs* (`||`; PostgreSQL re-reads a row a concurrent writer just committed), so
concurrent writers never lose each other's keys. `REBUILD_SQL` recomputes them from the
tables (the migration's backfill, the benchmark's bulk load, a repair).

SQLite keeps no documents: its searches join the tables (search/queries.py), which it answers
fast without statistics.
"""

from __future__ import annotations

import json

import orjson
from django.db import connection

# Latest-metric rows (columns key, value, is_nan, timestamp, step) as a document fragment;
# `{source}` is where the rows come from.
_METRICS_AGG = (
    "SELECT jsonb_object_agg(key, jsonb_build_array(CASE WHEN is_nan THEN NULL ELSE value::text END, "
    "timestamp, step)) FROM {source}"
)

# Every document of the runs matched by `{where}` (on tracking_run r), recomputed from the tables.
REBUILD_SQL = (
    "UPDATE tracking_run r SET "
    "search_params = coalesce((SELECT jsonb_object_agg(key, value) FROM tracking_param WHERE run_id = r.id), '{{}}'), "
    "search_tags = coalesce((SELECT jsonb_object_agg(key, value) FROM tracking_runtag WHERE run_id = r.id), '{{}}'), "
    "search_metrics = coalesce(("
    + _METRICS_AGG.format(source="tracking_latestmetric WHERE run_id = r.id")
    + "), '{{}}') "
    "WHERE {where}"
)


def merge_returned_metrics(cte: str) -> str:
    """An UPDATE, for a data-modifying WITH, that merges the latest-metric rows a previous part
    `cte` returned (the upsert returns exactly the rows it inserted or raised) into the run's
    document; one parameter, the run's id. For a transaction that writes only metrics, so that
    its one statement is still its last (services/bulk.py)."""
    fragment = _METRICS_AGG.format(source=cte)
    return (
        f"UPDATE tracking_run SET search_metrics = search_metrics || coalesce(({fragment}), '{{}}') "
        f"WHERE id = %s AND EXISTS (SELECT 1 FROM {cte})"
    )


def enabled() -> bool:
    return connection.vendor == "postgresql"


def merge(
    run_id: int,
    *,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    deleted_tags: list[str] | None = None,
    metric_keys: list[str] | None = None,
) -> None:
    """Bring the run's documents up to date with what this transaction wrote. Call it last.

    Metric values are read back from tracking_latestmetric (the upsert decided which point is
    the latest, and this transaction holds those rows' locks until it commits)."""
    if not enabled():
        return
    sets, args = [], []
    if params:
        sets.append("search_params = search_params || %s::jsonb")
        args.append(json.dumps(params))
    if tags or deleted_tags:
        sets.append("search_tags = (search_tags || %s::jsonb) - %s::text[]")
        args += [json.dumps(tags or {}), list(deleted_tags or [])]
    if metric_keys:
        fragment = _METRICS_AGG.format(source="tracking_latestmetric WHERE run_id = %s AND key = ANY(%s::varchar[])")
        sets.append(f"search_metrics = search_metrics || coalesce(({fragment}), '{{}}')")
        args += [run_id, list(metric_keys)]
    if not sets:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE tracking_run SET {', '.join(sets)} WHERE id = %s", [*args, run_id])


def rebuild(run_ids: list[int] | None = None) -> int:
    """Recompute documents from the tables (every run's when `run_ids` is None). Returns the count."""
    if not enabled():
        return 0
    where, args = ("TRUE", []) if run_ids is None else ("r.id = ANY(%s::bigint[])", [list(run_ids)])
    with connection.cursor() as cursor:
        cursor.execute(REBUILD_SQL.format(where=where), args)
        return cursor.rowcount


_PAGE_DATA_SQL = (
    "SELECT id, search_params::text, search_tags::text, search_metrics::text FROM tracking_run "
    "WHERE id = ANY(%s::bigint[])"
)


def page_data(run_ids: list[int]) -> dict[int, tuple[list, list, list]]:
    """{run id: (params, tags, metrics)} as selectors.RunData holds them, sorted by key, read from
    the documents: one row per run instead of a row per value. (Python builds the rows from the
    documents' text faster than PostgreSQL's JSON functions write MLflow's lists: 1 ms against
    4 ms for a page of a hundred runs.)"""
    if not run_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_PAGE_DATA_SQL, ["{" + ",".join(map(str, run_ids)) + "}"])
        rows = cursor.fetchall()
    loads, nan = orjson.loads, float("nan")
    data = {}
    for run_id, params, tags, metrics in rows:
        points = [
            (key, nan, True, timestamp, step) if value is None else (key, float(value), False, timestamp, step)
            for key, (value, timestamp, step) in sorted(loads(metrics).items())
        ]
        data[run_id] = (sorted(loads(params).items()), sorted(loads(tags).items()), points)
    return data
