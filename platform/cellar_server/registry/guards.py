"""Alias guards: other apps veto alias moves (the A/B tests app freezes `champion` while a test runs).

    from cellar_server.registry.guards import register_alias_guard

    def freeze_champion(team, model, alias, new_version):
        if alias == "champion" and test_running(team, model):
            return "An A/B test on this model is running; stop it or promote its winner."
        return None

    register_alias_guard(freeze_champion)

Every alias set/delete and stage transition calls each guard with (team, model: RegisteredModel,
alias: str, new_version: ModelVersion | None — None when the alias is deleted). A guard returns a
refusal message or None; the first refusal stops the move with 409 `alias_frozen`. A stage
transition asks for alias "stage:<Stage>". `model_alias_set(..., bypass_guards=True)` is how the
guard's own owner (promoting an A/B winner) moves the alias.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Guard = Callable[[Any, Any, str, Any], str | None]

_guards: list[Guard] = []


def register_alias_guard(fn: Guard) -> Guard:
    """Add a guard (idempotent: registering the same function twice keeps one). Usable as a decorator."""
    if fn not in _guards:
        _guards.append(fn)
    return fn


def unregister_alias_guard(fn: Guard) -> None:
    if fn in _guards:
        _guards.remove(fn)


def alias_refusal(team: Any, model: Any, alias: str, new_version: Any) -> str | None:
    """The first guard's refusal message, or None when every guard allows the move."""
    for guard in list(_guards):
        message = guard(team, model, alias, new_version)
        if message:
            return message
    return None
