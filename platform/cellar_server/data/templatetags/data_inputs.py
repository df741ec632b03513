"""Data sets on the tracking pages, without tracking importing this app:

{% run_datasets access run %}          the run page's "Data sets" section
{% compare_inputs access runs %}       the compare page's "Inputs" rows: the input changed?
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template

from cellar_server.data import selectors

register = template.Library()


@register.inclusion_tag("data/_run_datasets.html")
def run_datasets(access, run) -> dict[str, Any]:
    rows = selectors.datasets_for_runs(team=access.team, run_ids=[run.run_uuid]).get(run.run_uuid, [])
    return {"access": access, "rows": rows}


@register.inclusion_tag("data/_compare_inputs.html")
def compare_inputs(access, runs: Iterable[Any]) -> dict[str, Any]:
    """One row per data set name; per run the digests it read; `changed` when the runs disagree."""
    runs = list(runs)
    found = selectors.datasets_for_runs(team=access.team, run_ids=[r.run_uuid for r in runs])
    names = sorted({row["name"] for rows in found.values() for row in rows})
    table = []
    for name in names:
        cells = []
        for run in runs:
            digests = sorted({row["digest"] for row in found.get(run.run_uuid, []) if row["name"] == name})
            ids = {row["digest"]: row["dataset_id"] for row in found.get(run.run_uuid, []) if row["name"] == name}
            cells.append([(d, ids[d]) for d in digests])
        distinct = {tuple(d for d, _ in c) for c in cells}
        table.append({"name": name, "cells": cells, "changed": len(distinct) > 1})
    return {"access": access, "table": table, "any_changed": any(r["changed"] for r in table)}
