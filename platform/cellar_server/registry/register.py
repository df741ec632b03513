"""Registering from the SDK: one call makes the version and, past the evaluation gate, moves an alias.

The gate compares one metric of the new version with the version the alias points at now:
`{"metric": "auc", "mode": "max" | "min", "min_delta": 0.0}` (or just the metric name, higher
is better). When the new version is worse the version is still registered, the alias stays
where it was, and the answer says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cellar_server.core.scoping import team_scope
from cellar_server.registry import services
from cellar_server.registry.errors import RegistryError, invalid
from cellar_server.registry.models import ModelAlias, ModelVersion
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Team


@dataclass(frozen=True)
class Gate:
    metric: str
    mode: str = "max"
    min_delta: float = 0.0

    @classmethod
    def parse(cls, raw: Any) -> Gate | None:
        if raw in (None, "", {}):
            return None
        if isinstance(raw, str):
            return cls(metric=raw)
        if not isinstance(raw, dict) or not isinstance(raw.get("metric"), str) or not raw["metric"]:
            raise invalid("A gate is a metric name or {'metric': name, 'mode': 'max'|'min', 'min_delta': number}.")
        mode = raw.get("mode", "max")
        if mode not in ("max", "min"):
            raise invalid(f"Gate mode must be 'max' (higher is better) or 'min'; got '{mode}'.")
        try:
            min_delta = float(raw.get("min_delta", 0.0))
        except (TypeError, ValueError):
            raise invalid("Gate 'min_delta' must be a number.") from None
        return cls(metric=raw["metric"], mode=mode, min_delta=min_delta)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    metric: str
    new_value: float | None
    current_value: float | None
    current_version: int | None
    message: str


def gate_check(*, gate: Gate, alias: str, new: ModelVersion, current: ModelVersion | None) -> GateResult:
    value = new.metrics.get(gate.metric)
    if value is None:
        return GateResult(
            False,
            gate.metric,
            None,
            None,
            current.version if current else None,
            f"Version {new.version} has no metric '{gate.metric}': the gate cannot compare it, "
            f"so '{alias}' was not moved. Pass metrics={{'{gate.metric}': …}} or log it to the run.",
        )
    if current is None:
        return GateResult(
            True,
            gate.metric,
            value,
            None,
            None,
            f"No version holds '{alias}' yet: it moves to v{new.version} ({gate.metric}={value:g}).",
        )
    baseline = current.metrics.get(gate.metric)
    if baseline is None:
        return GateResult(
            True,
            gate.metric,
            value,
            None,
            current.version,
            f"v{current.version} has no '{gate.metric}' to beat: '{alias}' moves to v{new.version}.",
        )
    better = value >= baseline + gate.min_delta if gate.mode == "max" else value <= baseline - gate.min_delta
    word = "higher" if gate.mode == "max" else "lower"
    if better:
        message = (
            f"v{new.version} passed the gate: {gate.metric}={value:g} vs v{current.version}'s {baseline:g} "
            f"({word} is better); '{alias}' moves to v{new.version}."
        )
    else:
        message = (
            f"v{new.version} is registered but did not pass the gate: {gate.metric}={value:g} is not "
            f"{word} than v{current.version}'s {baseline:g}"
            + (f" by {gate.min_delta:g}" if gate.min_delta else "")
            + f"; '{alias}' stays on v{current.version}."
        )
    return GateResult(better, gate.metric, value, baseline, current.version, message)


def version_register(
    *,
    team: Team,
    actor: Actor,
    name: str,
    source: str,
    run_uuid: str | None = None,
    task_id: int | None = None,
    metrics: dict[str, float] | None = None,
    profile: dict | None = None,
    description: str = "",
    tags: Any = None,
    alias: str | None = None,
    gate: Any = None,
    reason: str | None = None,
) -> tuple[ModelVersion, dict[str, Any]]:
    """Register a version; then move `alias` to it unless the gate refuses. Returns (version, outcome)."""
    parsed_gate = Gate.parse(gate)
    if alias:
        services.validate_alias(alias)
    elif parsed_gate is not None:
        raise invalid("A gate guards an alias move: pass alias= with gate=.")
    model = services.model_get_or_create(team=team, actor=actor, name=services.validate_model_name(name))
    version = services.version_create(
        team=team,
        actor=actor,
        model=model,
        source=source,
        run_uuid=run_uuid,
        task_id=task_id,
        metrics=metrics,
        profile=profile,
        description=description,
        tags=tags,
    )
    outcome: dict[str, Any] = {"alias": alias or None, "alias_moved": False, "gate": None, "message": ""}
    if not alias:
        return version, outcome
    with team_scope(team.id):
        holder = ModelAlias.objects.select_related("version").filter(model=model, alias=alias).first()
    current = holder.version if holder is not None else None
    if parsed_gate is not None:
        result = gate_check(gate=parsed_gate, alias=alias, new=version, current=current)
        outcome["gate"] = asdict(result)
        outcome["message"] = result.message
        if not result.passed:
            return version, outcome
    try:
        services.model_alias_set(
            team=team,
            actor=actor,
            model=model,
            alias=alias,
            version=version,
            reason=reason or (outcome["message"] or "registered"),
        )
    except RegistryError as exc:
        if exc.code != "alias_frozen":
            raise
        # Like a gate refusal: the version stays registered, the alias stays where it is.
        outcome["message"] = f"v{version.version} is registered but {exc.message[0].lower()}{exc.message[1:]}"
        return version, outcome
    outcome["alias_moved"] = True
    outcome["message"] = outcome["message"] or f"'{alias}' now points at v{version.version}."
    return version, outcome
