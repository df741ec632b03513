"""The step cache on the control side: the same key as the local runner (the SDK's one rule,
`cellar.pipelines.runner.cache`), entries in the database, outputs by pointer.

Key = code hash + input hashes + the foreach item's hash + the values of the parameters the
step reads + the environment hash. A hit copies the entry's ArtifactRef dicts into the new
task; nothing is read from the artifact store (the control plane never touches user bytes).
Artifacts are never deleted today; whatever garbage-collects them must delete the cache
entries that point at them first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cellar.pipelines.execute import ArtifactRef
from cellar.pipelines.runner.cache import cache_key, cacheable
from cellar.pipelines.spec import Step
from cellar_server.pipelines.engine.rows import insert_cache_entries
from cellar_server.pipelines.models import StepCacheEntry

CHUNK = 500


def _ref(data: dict[str, Any]) -> ArtifactRef:
    return ArtifactRef.from_dict(data)


class HashedStep:
    """What `cache_key` reads of a step (its code hash and the parameters it reads), with the code
    hash computed once: a 20,000-task fan-out would otherwise hash the step's code 20,000 times."""

    def __init__(self, step: Step):
        self.parameters = step.parameters
        self._code_hash = step.code_hash()

    def code_hash(self) -> str:
        return self._code_hash


def task_cache_key(
    step: Step | HashedStep,
    *,
    inputs: dict[str, Any],
    item: dict[str, Any] | None,
    parameters: dict[str, Any],
    environment: str,
    unread: str | None,
) -> str:
    """The task's cache key ("" when it cannot have one: a parameter value that is not JSON)."""
    refs = {name: [_ref(r) for r in ref] if isinstance(ref, list) else _ref(ref) for name, ref in inputs.items()}
    key = cache_key(
        step,
        inputs=refs,
        item=_ref(item) if item is not None else None,
        parameters=parameters,
        environment=environment,
        unread=unread,
    )
    return key or ""


def cache_usable(step: Step) -> bool:
    """Whether hits may be used for this step: not `cache:off`, and it has outputs to reuse."""
    return cacheable(step)


def cache_lookup(*, team_id: int, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """key -> outputs (ArtifactRef dicts) for the keys the team has entries for."""
    wanted = sorted({k for k in keys if k})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = StepCacheEntry.all_teams.filter(team_id=team_id, key__in=wanted[start : start + CHUNK])
        found.update(rows.values_list("key", "outputs"))
    return found


def cache_hit(step: Step, outputs: dict[str, Any] | None) -> bool:
    """An entry serves a task only if it holds exactly the outputs the step declares."""
    return outputs is not None and set(outputs) == set(step.outputs)


def cache_store(*, entries: list[tuple[int, str, dict[str, Any], int]]) -> None:
    """Record (team_id, key, outputs, task_id) entries; an existing key keeps its first entry
    (the same key means the same content, so either is right). Plain SQL (engine/rows.py): a
    results batch stores hundreds, and model instances cost a third of applying it."""
    insert_cache_entries(entries)
