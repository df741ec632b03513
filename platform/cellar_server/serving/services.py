"""Writes for deployments, routes and keys (audited), and what serve processes report."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cellar.models.drift import merge_hist
from cellar_server.core.exceptions import ServiceError
from cellar_server.serving.models import (
    Deployment,
    DeploymentKey,
    PredictionMinute,
    PredictionSample,
    Route,
    VersionHealth,
)
from cellar_server.serving.versions import version_manifest
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record

RESERVED_NAMES = {"new"}  # /t/<team>/deployments/new/ is the create form's target
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
KEY_PREFIX = "cdk"
PREDICT_SCOPE = "serve:predict"
MAX_ROUTES = 16
MAX_SAMPLES_PER_VERSION = 5000


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _clean_routes(team: Team, routes: Any) -> list[tuple[str, float]]:
    """[{"version_id", "weight"}] → [(version_id, weight normalized to sum 1)], every version checked."""
    if not isinstance(routes, list) or not routes:
        raise ServiceError("invalid_routes", 'Give \'routes\' as a list like [{"version_id": "12", "weight": 1}].')
    if len(routes) > MAX_ROUTES:
        raise ServiceError("invalid_routes", f"A deployment routes to at most {MAX_ROUTES} versions.")
    cleaned: dict[str, float] = {}
    for index, route in enumerate(routes):
        if not isinstance(route, Mapping) or "version_id" not in route:
            raise ServiceError("invalid_routes", f"routes[{index}] needs a 'version_id'.")
        version_id = str(route["version_id"]).strip()
        weight = route.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0 or weight == float("inf"):
            raise ServiceError("invalid_weight", f"routes[{index}].weight must be a number ≥ 0, not {weight!r}.")
        if version_id in cleaned:
            raise ServiceError("duplicate_route", f"Version {version_id} is routed twice; give it one weight.")
        if version_manifest(team=team, version_id=version_id) is None:
            raise ServiceError(
                "unknown_model_version",
                f"This team has no model version with id {version_id!r}; register one first (see the Models page).",
            )
        cleaned[version_id] = float(weight)
    total = sum(cleaned.values())
    if total <= 0:
        raise ServiceError("invalid_weight", "At least one route needs a weight above 0.")
    return [(version_id, weight / total) for version_id, weight in cleaned.items()]


def _clean_fraction(value: Any, field: str, *, upper: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= upper:
        raise ServiceError("invalid_" + field, f"'{field}' must be a number between 0 and {upper:g}.")
    return float(value)


def _routes_body(deployment: Deployment) -> list[dict[str, Any]]:
    return [{"version_id": r.version_id, "weight": r.weight} for r in Route.all_teams.filter(deployment=deployment)]


def _replace_routes(deployment: Deployment, routes: list[tuple[str, float]]) -> None:
    Route.all_teams.filter(deployment=deployment).delete()
    Route.all_teams.bulk_create(
        [Route(team_id=deployment.team_id, deployment=deployment, version_id=v, weight=w) for v, w in routes]
    )


@transaction.atomic
def deployment_create(
    *,
    team: Team,
    actor: Actor,
    name: str,
    routes: Any,
    description: str = "",
    sample_rate: Any = None,
) -> Deployment:
    name = (name or "").strip()
    if name in RESERVED_NAMES:
        raise ServiceError("invalid_name", f"'{name}' is reserved; pick another deployment name.")
    if not NAME_RE.match(name):
        raise ServiceError(
            "invalid_name", "A deployment name is lowercase letters, digits and dashes (1-63), like 'churn-api'."
        )
    if Deployment.all_teams.filter(team=team, name=name).exists():
        raise ServiceError("deployment_exists", f"This team already has a deployment named '{name}'.", status_code=409)
    cleaned = _clean_routes(team, routes)
    deployment = Deployment.all_teams.create(
        team=team,
        name=name,
        description=str(description or "")[:2000],
        **({"sample_rate": _clean_fraction(sample_rate, "sample_rate")} if sample_rate is not None else {}),
    )
    _replace_routes(deployment, cleaned)
    audit_record(
        team=team,
        actor=actor,
        verb="deployment.create",
        target_type="deployment",
        target_id=deployment.pk,
        target_repr=name,
        details={"routes": _routes_body(deployment)},
    )
    return deployment


@transaction.atomic
def deployment_update(
    *,
    team: Team,
    actor: Actor,
    deployment: Deployment,
    routes: Any = None,
    description: Any = None,
    sample_rate: Any = None,
    drift_threshold: Any = None,
) -> Deployment:
    """Change routes (replaced whole) and settings; serve picks the change up on its next poll."""
    deployment = Deployment.all_teams.select_for_update().get(pk=deployment.pk, team=team)
    before = {"routes": _routes_body(deployment), "sample_rate": deployment.sample_rate}
    fields = ["updated_at"]
    if routes is not None:
        _replace_routes(deployment, _clean_routes(team, routes))
    if description is not None:
        deployment.description = str(description)[:2000]
        fields.append("description")
    if sample_rate is not None:
        deployment.sample_rate = _clean_fraction(sample_rate, "sample_rate")
        fields.append("sample_rate")
    if drift_threshold is not None:
        deployment.drift_threshold = _clean_fraction(drift_threshold, "drift_threshold", upper=100.0)
        fields.append("drift_threshold")
    deployment.updated_at = timezone.now()
    deployment.save(update_fields=fields)
    after = {"routes": _routes_body(deployment), "sample_rate": deployment.sample_rate}
    audit_record(
        team=team,
        actor=actor,
        verb="deployment.routes" if routes is not None else "deployment.update",
        target_type="deployment",
        target_id=deployment.pk,
        target_repr=deployment.name,
        details={"before": before, "after": after},
    )
    return deployment


@transaction.atomic
def deployment_delete(*, team: Team, actor: Actor, deployment: Deployment) -> None:
    audit_record(
        team=team,
        actor=actor,
        verb="deployment.delete",
        target_type="deployment",
        target_id=deployment.pk,
        target_repr=deployment.name,
        details={"routes": _routes_body(deployment)},
    )
    deployment.delete()


@transaction.atomic
def deployment_key_create(*, team: Team, actor: Actor, deployment: Deployment, name: str) -> tuple[DeploymentKey, str]:
    """Mint a prediction key; the raw key is returned once and stored only as its SHA-256."""
    name = (name or "").strip()
    if not name:
        raise ServiceError("invalid_name", "Give the key a name that says who calls with it, like 'checkout-service'.")
    prefix = secrets.token_hex(6)
    raw = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = DeploymentKey.all_teams.create(
        team=team,
        deployment=deployment,
        name=name[:100],
        prefix=prefix,
        key_hash=hash_key(raw),
        scopes=[PREDICT_SCOPE],
        created_by=actor.name,
    )
    audit_record(
        team=team,
        actor=actor,
        verb="deployment.key.create",
        target_type="deployment",
        target_id=deployment.pk,
        target_repr=f"{deployment.name}: {key.name} ({prefix})",
        details={"scopes": key.scopes},
    )
    return key, raw


@transaction.atomic
def deployment_key_revoke(*, team: Team, actor: Actor, key: DeploymentKey) -> DeploymentKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            team=team,
            actor=actor,
            verb="deployment.key.revoke",
            target_type="deployment",
            target_id=key.deployment_id,
            target_repr=f"{key.name} ({key.prefix})",
        )
    return key


# --- what serve processes report (serve credential; no user, no team scope) -------------------


def _deployments_by_id(ids: Iterable[Any]) -> dict[int, Deployment]:
    clean = {int(i) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())}
    return {d.pk: d for d in Deployment.all_teams.filter(pk__in=clean)}


def _bad(message: str) -> ServiceError:
    return ServiceError("invalid_report", message)


@transaction.atomic
def health_report(*, reporter: str, versions: Any) -> int:
    """[{"deployment_id", "version_id", "state", "error"}] → VersionHealth rows (last word wins)."""
    if not isinstance(versions, list):
        raise _bad("'versions' must be a list of {deployment_id, version_id, state, error}.")
    deployments = _deployments_by_id(v.get("deployment_id") for v in versions if isinstance(v, Mapping))
    written = 0
    for entry in versions:
        if not isinstance(entry, Mapping):
            raise _bad("Each health entry must be an object.")
        deployment = deployments.get(int(entry.get("deployment_id") or 0))
        state = entry.get("state")
        if deployment is None:
            continue  # deleted since serve last polled
        if state not in (VersionHealth.READY, VersionHealth.LOADING, VersionHealth.FAILED):
            raise _bad(f"Unknown state {state!r}: ready, loading or failed.")
        VersionHealth.all_teams.update_or_create(
            deployment=deployment,
            version_id=str(entry.get("version_id", "")),
            defaults={
                "team_id": deployment.team_id,
                "state": state,
                "error": str(entry.get("error") or "")[:8000],
                "reported_by": reporter[:120],
                "reported_at": timezone.now(),
            },
        )
        written += 1
    return written


def _minute(value: Any) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad("'minute' must be a Unix time in seconds.")
    return datetime.fromtimestamp(int(value) // 60 * 60, tz=UTC)


@transaction.atomic
def predictions_ingest(*, records: Any) -> dict[str, int]:
    """Serve's outbox of prediction logs: per-minute stats ({"kind": "stats"}) are added to the
    deployment × version × minute bucket; sampled inputs ({"kind": "sample"}) are kept for drift."""
    if not isinstance(records, list):
        raise _bad("'records' must be a list.")
    deployments = _deployments_by_id(r.get("deployment_id") for r in records if isinstance(r, Mapping))
    stats: dict[tuple[int, str, datetime], dict[str, Any]] = {}
    samples: list[PredictionSample] = []
    for record in records:
        if not isinstance(record, Mapping):
            raise _bad("Each record must be an object.")
        deployment = deployments.get(int(record.get("deployment_id") or 0))
        if deployment is None:
            continue
        version_id = str(record.get("version_id") or "")
        if record.get("kind") == "stats":
            key = (deployment.pk, version_id, _minute(record.get("minute")))
            into = stats.setdefault(
                key, {"requests": 0, "rows": 0, "errors": 0, "hist": [], "team": deployment.team_id}
            )
            for field in ("requests", "rows", "errors"):
                value = record.get(field, 0)
                if not isinstance(value, int) or value < 0:
                    raise _bad(f"'{field}' must be a count.")
                into[field] += value
            hist = record.get("latency_hist") or []
            if not isinstance(hist, list) or not all(isinstance(c, int) and c >= 0 for c in hist):
                raise _bad("'latency_hist' must be a list of counts.")
            into["hist"] = merge_hist(into["hist"], hist)
        elif record.get("kind") == "sample":
            rows = record.get("rows")
            if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
                raise _bad("A sample's 'rows' must be a list of objects.")
            at = datetime.fromtimestamp(float(record.get("at") or timezone.now().timestamp()), tz=UTC)
            samples.extend(
                PredictionSample(
                    team_id=deployment.team_id, deployment=deployment, version_id=version_id, at=at, inputs=r
                )
                for r in rows
            )
        else:
            raise _bad(f"Unknown record kind {record.get('kind')!r}: stats or sample.")
    ordered = sorted(stats.items(), key=lambda item: item[0])
    # Buckets first (ON CONFLICT DO NOTHING: serve processes flushing at once race to create them),
    # then each row locked in one order and added to.
    PredictionMinute.all_teams.bulk_create(
        [
            PredictionMinute(team_id=into["team"], deployment_id=d, version_id=v, minute=m)
            for (d, v, m), into in ordered
        ],
        ignore_conflicts=True,
    )
    for (deployment_id, version_id, minute), into in ordered:
        row = PredictionMinute.all_teams.select_for_update().get(
            deployment_id=deployment_id, version_id=version_id, minute=minute
        )
        row.requests += into["requests"]
        row.rows += into["rows"]
        row.errors += into["errors"]
        row.latency_hist = merge_hist(row.latency_hist, into["hist"])
        row.save(update_fields=["requests", "rows", "errors", "latency_hist"])
    PredictionSample.all_teams.bulk_create(samples, batch_size=500)
    for deployment_id in {sample.deployment_id for sample in samples}:
        samples_trim(deployment=deployments[deployment_id])
    if stats:
        # Per-minute stats are kept for CELLAR_SERVING_STATS_DAYS (indexed by deployment, minute).
        horizon = timezone.now() - timedelta(days=getattr(settings, "CELLAR_SERVING_STATS_DAYS", 30))
        PredictionMinute.all_teams.filter(deployment_id__in={k[0] for k in stats}, minute__lt=horizon).delete()
    return {"stats": len(stats), "samples": len(samples)}


def samples_trim(*, deployment: Deployment, keep: int = MAX_SAMPLES_PER_VERSION) -> int:
    """Keep the newest `keep` samples per version (drift reads a recent window)."""
    deleted = 0
    for version_id in (
        PredictionSample.all_teams.filter(deployment=deployment).values_list("version_id", flat=True).distinct()
    ):
        rows = PredictionSample.all_teams.filter(deployment=deployment, version_id=version_id).order_by("-at", "-id")
        cutoff = rows.values_list("id", flat=True)[keep : keep + 1]
        if cutoff:
            deleted += rows.filter(id__lte=cutoff[0]).delete()[0]
    return deleted
