"""Hooks into other apps, registered at start-up (AbtestsConfig.ready):

- serving's route manifest gets an "abtest" block for a deployment with a running test, which
  the serve process hands to `cellar_worker.serve.abtest.assign` for every row with a unit id;
- the registry refuses to move a model's `champion` alias while a test on it runs.
"""

from __future__ import annotations

from typing import Any

from cellar_server.abtests.models import ABTest


def abtest_manifest_block(test: ABTest) -> dict[str, Any]:
    arms = list(test.arms.all())
    return {
        "test_id": test.pk,
        "team": test.team.slug if hasattr(test, "team") else None,
        "seed": test.seed,
        "hash_version": 2,
        "phase": test.phase,
        "coverage": test.coverage,
        "shadow": test.shadow,
        "control_version_id": arms[0].version_id,
        "variants": [{"key": a.key, "version_id": a.version_id, "weight": a.weight} for a in arms],
    }


def manifest_extension(deployment) -> tuple[str, dict[str, Any], list[str]] | None:
    test = (
        ABTest.all_teams.filter(team_id=deployment.team_id, deployment_id=deployment.pk, status=ABTest.RUNNING)
        .select_related("team")
        .prefetch_related("arms")
        .first()
    )
    if test is None:
        return None
    block = abtest_manifest_block(test)
    return "abtest", block, [v["version_id"] for v in block["variants"]]


def champion_guard(team, model, alias, new_version) -> str | None:
    """Refuse moving `champion` of a model while a running test compares its versions."""
    if str(alias) != "champion":
        return None
    model_name = getattr(model, "name", model)
    for test in ABTest.all_teams.filter(team=team, status=ABTest.RUNNING).prefetch_related("arms"):
        if getattr(test, "_model_name", None) is None:
            from cellar_server.abtests.bridges import version_info

            info = version_info(team=team, version_id=test.arms.all()[0].version_id) or {}
            test._model_name = info.get("model")
        if test._model_name == model_name:
            return (
                f"The A/B test '{test.name}' (id {test.pk}) is running on this model, so 'champion' is frozen; "
                "promote its winner or stop it first."
            )
    return None


def register() -> None:
    try:
        from cellar_server.serving.hooks import register_manifest_extension
    except ImportError:
        pass
    else:
        register_manifest_extension(manifest_extension)
    try:
        from cellar_server.registry.guards import register_alias_guard
    except ImportError:
        pass
    else:
        register_alias_guard(champion_guard)
