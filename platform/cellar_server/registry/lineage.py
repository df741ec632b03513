"""Where a model version came from, and how two versions differ.

version ← tracking run (params, metrics) ← pipeline run and version (the step's code, the
notebook it was promoted from, the environment lock) ← input data sets (the data app's
`datasets_for_runs`), plus the alias moves. Reads the engine's and tracking's rows by id, inside
the team scope; nothing here writes.
"""

from __future__ import annotations

import difflib
from typing import Any

from cellar_server.core.scoping import team_scope
from cellar_server.registry.models import ModelVersion
from cellar_server.teams.models import Team


def _datasets(team: Team, run_uuids: list[str]) -> dict[str, list[dict[str, Any]]]:
    try:
        from cellar_server.data.selectors import datasets_for_runs
    except ImportError:  # the data layer is not installed
        return {}
    return datasets_for_runs(team=team, run_ids=run_uuids)


def _run(version: ModelVersion) -> dict[str, Any] | None:
    run = version.run
    if run is None:
        return None
    return {
        "run_uuid": run.run_uuid,
        "name": run.name,
        "status": run.status,
        "experiment": run.experiment.name,
        "user": run.user_name,
        "source_name": run.source_name,
        "params": dict(version.params),
        "metrics": dict(version.metrics),
    }


def _pipeline(team: Team, version: ModelVersion) -> dict[str, Any] | None:
    from cellar_server.pipelines.models import PipelineRun

    with team_scope(team.id):
        task = version.task
        if task is not None:
            prun = PipelineRun.objects.select_related("version", "pipeline").get(pk=task.run_id)
            step_name = task.step
        elif version.run_uuid:
            prun = (
                PipelineRun.objects.select_related("version", "pipeline").filter(tracking_run=version.run_uuid).first()
            )
            step_name = None
        else:
            prun = None
    if prun is None:
        return None
    spec = prun.version.spec or {}
    steps = {s.get("name"): s for s in spec.get("steps", [])}
    step = steps.get(step_name) if step_name else None
    source = (spec.get("source") or {}).get(step_name) if step_name else None
    return {
        "pipeline": prun.pipeline.name,
        "run_number": prun.number,
        "version_number": prun.version.number,
        "version_hash": prun.version.hash,
        "notebook": prun.version.notebook or spec.get("notebook", ""),
        "step": step_name,
        "code": (step or {}).get("code", ""),
        "prelude": (step or {}).get("prelude", ""),
        "cells": source,
        "python": spec.get("python", ""),
        "environment": dict(spec.get("environment") or {}),
        "parameters": dict(prun.parameters or {}),
        "task_index": version.task.index if version.task is not None else None,
    }


def version_lineage(*, team: Team, version: ModelVersion) -> dict[str, Any]:
    run = _run(version)
    datasets = _datasets(team, [version.run_uuid]).get(version.run_uuid, []) if version.run_uuid else []
    return {
        "version": {
            "model": version.model.name,
            "version": version.version,
            "id": str(version.pk),
            "source": version.source,
            "flavor": version.flavor,
        },
        "run": run,
        "pipeline": _pipeline(team, version),
        "datasets": datasets,
    }


def _dict_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key), b.get(key)
        if old != new:
            rows.append(
                {
                    "key": key,
                    "old": old,
                    "new": new,
                    "change": "added" if key not in a else "removed" if key not in b else "changed",
                }
            )
    return rows


def _code_diff(a: str, b: str) -> list[str]:
    return list(difflib.unified_diff(a.splitlines(), b.splitlines(), "old", "new", lineterm="", n=2))


def version_diff(*, team: Team, old: ModelVersion, new: ModelVersion) -> dict[str, Any]:
    """Metrics, parameters, step code, environment and input data between two versions."""
    la, lb = version_lineage(team=team, version=old), version_lineage(team=team, version=new)
    pa, pb = la["pipeline"] or {}, lb["pipeline"] or {}
    da = {d["name"]: d.get("digest") for d in la["datasets"]}
    db = {d["name"]: d.get("digest") for d in lb["datasets"]}
    metric_rows = _dict_diff(old.metrics, new.metrics)
    for row in metric_rows:
        if isinstance(row["old"], (int, float)) and isinstance(row["new"], (int, float)):
            row["delta"] = row["new"] - row["old"]
    return {
        "metrics": metric_rows,
        "params": _dict_diff(old.params, new.params),
        "code": _code_diff(pa.get("prelude", "") + pa.get("code", ""), pb.get("prelude", "") + pb.get("code", "")),
        "has_code": bool(pa or pb),
        "environment": _dict_diff(pa.get("environment", {}), pb.get("environment", {})),
        "data": _dict_diff(da, db),
        "files_same": old.files == new.files,
        "signature_same": old.signature == new.signature,
    }
