"""What a run's search documents (PostgreSQL) hold, and what the tables say they should hold."""

from __future__ import annotations

import json

from django.db import connection

from cellar_server.tracking.models import LatestMetric, Param, RunTag


def documents_of(run_pk: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT search_params::text, search_tags::text, search_metrics::text FROM tracking_run WHERE id = %s",
            [run_pk],
        )
        params, tags, metrics = (json.loads(text) for text in cursor.fetchone())
    points = {key: (None if value is None else float(value), ts, step) for key, (value, ts, step) in metrics.items()}
    return {"params": params, "tags": tags, "metrics": points}


def documents_from_tables(run_pk: int) -> dict:
    """Computed in Python from the rows, independently of the SQL that writes the documents."""
    return {
        "params": dict(Param.objects.filter(run_id=run_pk).values_list("key", "value")),
        "tags": dict(RunTag.objects.filter(run_id=run_pk).values_list("key", "value")),
        "metrics": {
            key: (None if is_nan else value, ts, step)
            for key, value, is_nan, ts, step in LatestMetric.objects.filter(run_id=run_pk).values_list(
                "key", "value", "is_nan", "timestamp", "step"
            )
        },
    }
