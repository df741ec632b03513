"""Which content-addressed blobs are still in use: a registry every app adds to.

The garbage collector (cellar_server/data/gc.py) deletes a blob under `teams/<team>/data/`
only when no registered provider names it. Each app that records blob hashes registers one
function per kind of record, from its AppConfig.ready():

    blob_refs.register("tracking.artifacts", tracking_artifact_hashes)

A provider takes the team and the retention cut (`RetentionCut`) and yields sha256 hex
digests. It must yield every hash a live record points at: a hash it forgets is deleted.
Providers of records that belong to a tracking run (run artifacts, pipeline task outputs)
leave out the runs the cut expires; providers of records that are always kept (model
versions, data set snapshots) ignore the cut.

Apps that must keep whole runs (a registered model version's source run, say) register a
keeper: `blob_refs.register_keeper("registry.model_versions", fn)`, fn(team) -> run ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cellar_server.teams.models import Team


@dataclass(frozen=True)
class RetentionCut:
    """The tracking runs (run_uuid) whose artifacts retention lets go; empty: nothing expires.

    Computed by the data app's retention (cellar_server/data/retention.py) from the team's
    policy and every registered keeper."""

    expired_runs: frozenset[str] = field(default_factory=frozenset)
    expired_before: datetime | None = None


Provider = Callable[[Team, RetentionCut], Iterable[str]]

_providers: dict[str, Provider] = {}


def register(name: str, provider: Provider) -> None:
    """Add (or replace) the provider called `name`."""
    _providers[name] = provider


def providers() -> dict[str, Provider]:
    return dict(_providers)


def live_hashes(team: Team, cut: RetentionCut | None = None) -> set[str]:
    """Every hash any provider names for `team` under `cut`."""
    cut = cut or RetentionCut()
    live: set[str] = set()
    for provider in _providers.values():
        live.update(h for h in provider(team, cut) if h)
    return live


# --- run keepers: apps that pin tracking runs (a registered model version's source run, say) ---

Keeper = Callable[[Team], Iterable[str]]

_keepers: dict[str, Keeper] = {}


def register_keeper(name: str, keeper: Keeper) -> None:
    """Add (or replace) a function yielding the tracking run ids (run_uuid) retention must keep."""
    _keepers[name] = keeper


def kept_runs(team: Team) -> set[str]:
    kept: set[str] = set()
    for keeper in _keepers.values():
        kept.update(r for r in keeper(team) if r)
    return kept
