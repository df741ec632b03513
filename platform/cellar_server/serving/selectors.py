"""Reads: route manifests for serve processes, deployments with health, traffic and drift."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from cellar.models.drift import drift_report, latency_percentile, merge_hist
from cellar_server.serving.hooks import manifest_extensions
from cellar_server.serving.models import (
    Deployment,
    DeploymentKey,
    PredictionMinute,
    PredictionSample,
    Route,
    VersionHealth,
)
from cellar_server.serving.versions import version_manifest

DRIFT_WINDOW = 2000


def deployment_manifest(deployment: Deployment) -> dict[str, Any]:
    """What one serve process needs to answer /serve/<team>/<deployment>/predict."""
    team = deployment.team
    routes = [{"version_id": r.version_id, "weight": r.weight} for r in deployment.routes.all()]
    keys = [k.key_hash for k in deployment.keys.all() if k.revoked_at is None]
    extensions, extra = manifest_extensions(deployment)
    models: dict[str, Any] = {}
    for version_id in [r["version_id"] for r in routes] + extra:
        if version_id not in models:
            models[version_id] = version_manifest(team=team, version_id=version_id)
    return {
        "id": deployment.pk,
        "team": team.slug,
        "deployment": deployment.name,
        "routes": routes,
        "models": models,
        "keys": keys,
        "sample_rate": deployment.sample_rate,
        "extensions": extensions,
    }


def route_manifests() -> tuple[dict[str, Any], str]:
    """Every deployment's manifest (serve reads them all; one machine-wide credential), and an ETag."""
    deployments = (
        Deployment.all_teams.select_related("team").prefetch_related("routes", "keys").order_by("team__slug", "name")
    )
    body = {"deployments": [deployment_manifest(d) for d in deployments]}
    etag = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return body, f'"{etag}"'


@dataclass
class DeploymentSummary:
    deployment: Deployment
    routes: list[Route]
    health: dict[str, VersionHealth] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """healthy (every routed version loaded), degraded (some failed), failed, or pending."""
        states = [self.health[r.version_id].state if r.version_id in self.health else "pending" for r in self.routes]
        if states and all(s == VersionHealth.READY for s in states):
            return "healthy"
        if VersionHealth.FAILED in states:
            return "degraded" if VersionHealth.READY in states else "failed"
        return "pending"


def deployment_list(*, team) -> list[DeploymentSummary]:
    deployments = list(Deployment.objects.filter(team=team).prefetch_related("routes", "health"))
    return [DeploymentSummary(d, list(d.routes.all()), {h.version_id: h for h in d.health.all()}) for d in deployments]


def deployment_get(*, team, name: str) -> Deployment | None:
    return Deployment.objects.filter(team=team, name=name).first()


def deployment_summary(*, deployment: Deployment) -> DeploymentSummary:
    health = {h.version_id: h for h in VersionHealth.objects.filter(deployment=deployment)}
    return DeploymentSummary(deployment, list(Route.objects.filter(deployment=deployment)), health)


def deployment_keys(*, deployment: Deployment) -> list[DeploymentKey]:
    return list(DeploymentKey.objects.filter(deployment=deployment))


def deployment_traffic(*, deployment: Deployment, minutes: int = 60) -> dict[str, Any]:
    """Per minute over the last `minutes`: requests/s, rows, errors, latency p50/p99 (all versions)."""
    since = timezone.now() - timedelta(minutes=minutes)
    buckets: dict[Any, dict[str, Any]] = {}
    per_version: dict[str, int] = {}
    for row in PredictionMinute.objects.filter(deployment=deployment, minute__gte=since).order_by("minute"):
        into = buckets.setdefault(row.minute, {"requests": 0, "rows": 0, "errors": 0, "hist": []})
        into["requests"] += row.requests
        into["rows"] += row.rows
        into["errors"] += row.errors
        into["hist"] = merge_hist(into["hist"], row.latency_hist)
        per_version[row.version_id] = per_version.get(row.version_id, 0) + row.requests
    total_hist: list[int] = []
    series = []
    for minute, b in sorted(buckets.items()):
        total_hist = merge_hist(total_hist, b["hist"])
        series.append(
            {
                "minute": minute.isoformat(),
                "requests": b["requests"],
                "rate": round(b["requests"] / 60.0, 3),
                "rows": b["rows"],
                "errors": b["errors"],
                "p50_ms": latency_percentile(b["hist"], 0.5),
                "p99_ms": latency_percentile(b["hist"], 0.99),
            }
        )
    return {
        "series": series,
        "requests": sum(b["requests"] for b in buckets.values()),
        "errors": sum(b["errors"] for b in buckets.values()),
        "p50_ms": latency_percentile(total_hist, 0.5),
        "p99_ms": latency_percentile(total_hist, 0.99),
        "by_version": per_version,
    }


def deployment_drift(*, deployment: Deployment, window: int = DRIFT_WINDOW) -> list[dict[str, Any]]:
    """Per routed version: PSI per feature of its last `window` sampled inputs vs its reference profile."""
    results = []
    team = deployment.team
    for route in Route.objects.filter(deployment=deployment):
        manifest = version_manifest(team=team, version_id=route.version_id) or {}
        rows = list(
            PredictionSample.objects.filter(deployment=deployment, version_id=route.version_id)
            .order_by("-at", "-id")
            .values_list("inputs", flat=True)[:window]
        )
        profile = manifest.get("profile")
        features = drift_report(profile, rows, threshold=deployment.drift_threshold) if rows else []
        results.append(
            {
                "version_id": route.version_id,
                "model": manifest.get("model"),
                "version": manifest.get("version"),
                "samples": len(rows),
                "has_profile": bool(profile),
                "features": features,
                "warnings": [f["feature"] for f in features if f["warning"]],
            }
        )
    return results
