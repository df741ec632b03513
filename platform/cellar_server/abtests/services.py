"""Writes for A/B tests: create, weights (new phase), coverage, stop, extend, promote (audited)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from cellar_server.abtests import bridges, validation
from cellar_server.abtests.models import ABTest, Arm, Metric, Phase
from cellar_server.core.exceptions import ServiceError
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team
from cellar_server.teams.services import audit_record

ARM_KEYS = "abcdefgh"


def _audit(test: ABTest, actor: Actor, verb: str, details: dict[str, Any]) -> None:
    audit_record(
        team=test.team,
        actor=actor,
        verb=verb,
        target_type="abtest",
        target_id=test.pk,
        target_repr=test.name,
        details=details,
    )


def _check_versions(team: Team, version_ids: list[str]) -> str:
    """Every variant is a version of this team and of the same model; returns the model name."""
    model = None
    for version_id in version_ids:
        info = bridges.version_info(team=team, version_id=version_id)
        if info is None:
            raise ServiceError(
                "unknown_model_version",
                f"This team has no model version with id {version_id!r}; register it first (Models page).",
            )
        if model is None:
            model = info.get("model")
        elif info.get("model") != model:
            raise ServiceError(
                "variant_from_another_model",
                f"Version {version_id} belongs to model '{info.get('model')}', but the control is a version of "
                f"'{model}'; an A/B test compares versions of one model.",
            )
    return str(model)


def _arms_weights(test: ABTest) -> list[float]:
    return [a.weight for a in test.arms.all()]


@transaction.atomic
def abtest_create(
    *,
    team: Team,
    actor: Actor,
    deployment_name: str,
    name: str,
    variants: Any,
    metrics: Any,
    coverage: Any = 1.0,
    seed: str | None = None,
    shadow: bool = False,
    alpha: Any = 0.05,
    sequential_n_star: Any = 5000,
    duration_days: Any = 14,
    description: str = "",
) -> ABTest:
    name = str(name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ServiceError("invalid_name", "Give the test a name (1-100 characters), like 'ranker v7 vs v6'.")
    deployment = bridges.deployment_get(team=team, name=str(deployment_name or ""))
    if deployment is None:
        raise ServiceError("unknown_deployment", f"This team has no deployment named {deployment_name!r}.")
    arms = validation.variants(variants)
    model = _check_versions(team, [v for v, _ in arms])
    champion = bridges.champion_version_id(team=team, model=model)
    if champion is not None and champion != arms[0][0]:
        raise ServiceError(
            "control_not_champion",
            f"The control (first variant) must be the current champion of '{model}', version id {champion}.",
        )
    metric_defs = validation.metrics(metrics)
    coverage = validation.number(coverage, "coverage", low=0, high=1)
    alpha = validation.number(alpha, "alpha", low=1e-6, high=0.5)
    n_star = validation.number(sequential_n_star, "sequential_n_star", low=10)
    days = validation.number(duration_days, "duration_days", low=0.001, high=365)
    if ABTest.all_teams.filter(team=team, deployment_id=deployment.pk, status=ABTest.RUNNING).exists():
        raise ServiceError(
            "test_already_running",
            f"The deployment '{deployment.name}' already has a running A/B test; stop or promote it first.",
            status_code=409,
        )
    now = timezone.now()
    test = ABTest.all_teams.create(
        team=team,
        name=name,
        description=str(description or "")[:4000],
        deployment_id=deployment.pk,
        deployment_name=deployment.name,
        seed=str(seed or "") or f"abtest-{secrets.token_hex(8)}",
        status=ABTest.RUNNING,
        shadow=bool(shadow),
        coverage=coverage,
        alpha=alpha,
        sequential_n_star=n_star,
        created_by=actor.name,
        started_at=now,
        ends_at=now + timedelta(days=days),
    )
    Arm.all_teams.bulk_create(
        [
            Arm(team=team, test=test, position=i, key="control" if i == 0 else ARM_KEYS[i], version_id=v, weight=w)
            for i, (v, w) in enumerate(arms)
        ]
    )
    Phase.all_teams.create(team=team, test=test, number=1, weights=[w for _, w in arms], coverage=coverage)
    Metric.all_teams.bulk_create([Metric(team=team, test=test, **m) for m in metric_defs])
    _audit(
        test,
        actor,
        "abtest.start",
        {"deployment": deployment.name, "variants": [{"version_id": v, "weight": w} for v, w in arms]},
    )
    return test


def _running(test: ABTest) -> ABTest:
    locked = ABTest.all_teams.select_for_update().get(pk=test.pk, team_id=test.team_id)
    if locked.status != ABTest.RUNNING:
        raise ServiceError("test_not_running", f"The test '{locked.name}' is {locked.status}.", status_code=409)
    return locked


@transaction.atomic
def abtest_set_weights(*, test: ABTest, actor: Actor, weights: Any) -> ABTest:
    """New weights move range boundaries (units can change arm), so they start a new phase."""
    test = _running(test)
    arms = list(test.arms.all())
    new = validation.weights(weights, len(arms))
    before = [a.weight for a in arms]
    if new == before:
        return test
    now = timezone.now()
    Phase.all_teams.filter(test=test, number=test.phase).update(ended_at=now)
    test.phase += 1
    Phase.all_teams.create(team_id=test.team_id, test=test, number=test.phase, weights=new, coverage=test.coverage)
    for arm, w in zip(arms, new, strict=True):
        arm.weight = w
        arm.save(update_fields=["weight"])
    test.save(update_fields=["phase"])
    _audit(test, actor, "abtest.weights", {"before": before, "after": new, "phase": test.phase})
    return test


@transaction.atomic
def abtest_set_coverage(*, test: ABTest, actor: Actor, coverage: Any) -> ABTest:
    """Coverage changes keep the phase: range starts stay put, so enrolled units keep their arm."""
    test = _running(test)
    value = validation.number(coverage, "coverage", low=0, high=1)
    before = test.coverage
    test.coverage = value
    test.save(update_fields=["coverage"])
    Phase.all_teams.filter(test=test, number=test.phase).update(coverage=value)
    _audit(test, actor, "abtest.coverage", {"before": before, "after": value})
    return test


@transaction.atomic
def abtest_stop(*, test: ABTest, actor: Actor, reason: str = "") -> ABTest:
    test = _running(test)
    test.status = ABTest.STOPPED
    test.stopped_at = timezone.now()
    test.save(update_fields=["status", "stopped_at"])
    Phase.all_teams.filter(test=test, number=test.phase).update(ended_at=test.stopped_at)
    _audit(test, actor, "abtest.stop", {"reason": str(reason or "")[:2000]})
    return test


@transaction.atomic
def abtest_extend(*, test: ABTest, actor: Actor, days: Any) -> ABTest:
    test = _running(test)
    extra = validation.number(days, "days", low=0.001, high=365)
    before = test.ends_at
    test.ends_at = max(test.ends_at or timezone.now(), timezone.now()) + timedelta(days=extra)
    test.save(update_fields=["ends_at"])
    _audit(test, actor, "abtest.extend", {"before": str(before), "after": str(test.ends_at), "days": extra})
    return test


@transaction.atomic
def abtest_promote(*, test: ABTest, actor: Actor, arm_key: str | None = None, reason: str = "") -> ABTest:
    """Route 100% of the deployment to the winner, move `champion`, stop the test; audited.

    Promoting anything but a "ready" winner needs a typed reason, which goes in the audit log."""
    from cellar_server.abtests.analysis import analyse

    test = _running(test)
    result = analyse(test=test, with_timeline=False)
    decision = result["decision"]
    arm_key = arm_key or decision.get("winner")
    arm = test.arms.filter(key=arm_key).first() if arm_key else None
    if arm is None:
        raise ServiceError(
            "no_winner", "There is no winner yet; name the arm to promote ('arm') and give a reason.", status_code=409
        )
    ready = decision["state"] == "ready" and decision.get("winner") == arm.key
    reason = str(reason or "").strip()
    if not ready and len(reason) < 10:
        raise ServiceError(
            "reason_required",
            f"The test is not ready to promote ({decision['summary']}). Type a reason (10+ characters) to promote "
            f"'{arm.key}' anyway; it is kept in the audit log.",
        )
    now = timezone.now()
    test.status = ABTest.PROMOTED
    test.stopped_at = now
    test.winner_arm = arm.key
    test.save(update_fields=["status", "stopped_at", "winner_arm"])
    Phase.all_teams.filter(test=test, number=test.phase).update(ended_at=now)
    bridges.route_all_traffic(
        team=test.team, actor=actor, deployment_name=test.deployment_name, version_id=arm.version_id
    )
    info = bridges.version_info(team=test.team, version_id=arm.version_id) or {}
    moved = bridges.move_champion(
        team=test.team, actor=actor, model=str(info.get("model")), version_id=arm.version_id, reason=reason or None
    )
    _audit(
        test,
        actor,
        "abtest.promote",
        {
            "arm": arm.key,
            "version_id": arm.version_id,
            "ready": ready,
            "reason": reason,
            "decision": decision["summary"],
            "champion_moved": moved,
        },
    )
    return test
