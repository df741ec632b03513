"""Plain dicts for the API's responses, in the shapes serializers.py documents."""

from __future__ import annotations

from typing import Any

from cellar.pipelines.spec import PipelineSpec
from cellar_server.pipelines.dag import edges_of
from cellar_server.pipelines.models import Pipeline, PipelineVersion, ProductionMove


def version_ref(version: PipelineVersion | None) -> dict[str, Any] | None:
    return None if version is None else {"id": version.hash, "number": version.number}


def version_summary(version: PipelineVersion, pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": version.hash,
        "number": version.number,
        "pipeline": pipeline.name,
        "notebook": version.notebook,
        "step_count": version.step_count,
        "created_by": version.created_by.username if version.created_by_id else None,
        "created_at": version.created_at,
        "is_production": pipeline.production_id == version.pk,
    }


def spec_parts(spec: dict[str, Any]) -> dict[str, Any]:
    """Steps (with their source cells), edges, parameters and environment of a stored spec."""
    source = spec.get("source") or {}
    return {
        "format": spec.get("format"),
        "steps": [{**step, "source": source.get(step["name"])} for step in spec.get("steps", [])],
        "edges": [{"source": e.source, "target": e.target, "variables": e.variables} for e in edges_of(spec)],
        "parameters": spec.get("parameters", []),
        "environment": {
            "python": spec.get("python", ""),
            "packages": spec.get("environment") or {},
            "modules": spec.get("modules") or {},
        },
    }


def version_detail(version: PipelineVersion, pipeline: Pipeline) -> dict[str, Any]:
    return {**version_summary(version, pipeline), **spec_parts(version.spec), "warnings": version.warnings}


def compile_result(spec: PipelineSpec | None, warnings: list[dict], problems: list[dict]) -> dict[str, Any]:
    if spec is None:
        parts = {"steps": [], "edges": [], "parameters": [], "environment": None}
        return {"ok": False, "id": None, **parts, "warnings": warnings, "problems": problems}
    data = spec.to_dict()
    parts = spec_parts(data)
    parts.pop("format")
    return {"ok": not problems, "id": data["hash"], **parts, "warnings": warnings, "problems": problems}


def pipeline_payload(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "name": pipeline.name,
        "description": pipeline.description,
        "created_by": pipeline.created_by.username if pipeline.created_by_id else None,
        "created_at": pipeline.created_at,
        "version_count": getattr(pipeline, "version_count", None) or 0,
        "latest_version": getattr(pipeline, "latest_number", None),
        "production": version_ref(pipeline.production),
    }


def move_payload(move: ProductionMove) -> dict[str, Any]:
    return {
        "id": move.pk,
        "kind": move.kind,
        "from_version": version_ref(move.from_version),
        "to_version": version_ref(move.to_version),
        "actor": move.actor_name,
        "created_at": move.created_at,
    }
