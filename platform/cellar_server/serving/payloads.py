"""JSON shapes of the serving API (one per resource)."""

from __future__ import annotations

from typing import Any

from cellar_server.serving.models import DeploymentKey
from cellar_server.serving.selectors import DeploymentSummary


def deployment_payload(summary: DeploymentSummary) -> dict[str, Any]:
    d = summary.deployment
    return {
        "id": d.pk,
        "name": d.name,
        "description": d.description,
        "sample_rate": d.sample_rate,
        "drift_threshold": d.drift_threshold,
        "state": summary.state,
        "routes": [
            {
                "version_id": r.version_id,
                "weight": r.weight,
                "health": summary.health[r.version_id].state if r.version_id in summary.health else "pending",
                "error": summary.health[r.version_id].error if r.version_id in summary.health else "",
            }
            for r in summary.routes
        ],
        "created_at": d.created_at.isoformat(),
        "updated_at": d.updated_at.isoformat(),
    }


def key_payload(key: DeploymentKey, raw: str | None = None) -> dict[str, Any]:
    body = {
        "id": key.pk,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "created_by": key.created_by,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
    if raw is not None:
        body["key"] = raw  # shown once
    return body
