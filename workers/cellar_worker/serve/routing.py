"""One deployment's live table: the loaded versions it routes to, by weight, and its keys.

Tables are immutable; the sync thread builds a new one and swaps the reference, so a request
always sees one consistent table (hot swap without a failed request).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from cellar_worker.serve.loader import Predictor


@dataclass(frozen=True)
class DeploymentTable:
    id: int
    team: str
    name: str
    predictors: dict[str, Predictor]  # every loaded version this deployment may use
    routed: tuple[str, ...]  # versions taking plain traffic (loaded ones only)
    cumulative: tuple[float, ...]  # cumulative weights over `routed`, last = 1
    keys: frozenset[str]  # sha256 of each live deployment key
    sample_rate: float = 0.0
    extensions: dict[str, Any] = field(default_factory=dict)
    # The manifest's routes (what the control plane asked for), for health and for diffing polls.
    wanted: tuple[tuple[str, float], ...] = ()

    def choose(self, rng: random.Random = random._inst) -> Predictor:  # type: ignore[attr-defined]
        if len(self.routed) == 1:
            return self.predictors[self.routed[0]]
        index = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        return self.predictors[self.routed[min(index, len(self.routed) - 1)]]

    def authorized(self, raw_key: str) -> bool:
        return hashlib.sha256(raw_key.encode()).hexdigest() in self.keys


def build_table(
    manifest: dict[str, Any],
    loaded: dict[str, Predictor],
    previous: DeploymentTable | None,
) -> DeploymentTable | None:
    """The table for `manifest` given the versions that loaded. Routes whose version failed to
    load drop out and the rest share their weight; when none loaded, the previous table's
    versions keep serving (the last good routes). None when there is nothing to serve with."""
    wanted = tuple((str(r["version_id"]), float(r["weight"])) for r in manifest.get("routes") or [])
    live = [(v, w) for v, w in wanted if v in loaded and w > 0]
    predictors = dict(loaded)
    if not live and previous is not None and previous.routed:
        live = [(v, w) for v, w in zip(previous.routed, _weights(previous.cumulative), strict=True)]
        predictors.update({v: previous.predictors[v] for v, _ in live})
    if not live:
        return None
    total = sum(w for _, w in live)
    cumulative, running = [], 0.0
    for _, weight in live:
        running += weight / total
        cumulative.append(running)
    cumulative[-1] = 1.0
    return DeploymentTable(
        id=int(manifest["id"]),
        team=manifest["team"],
        name=manifest["deployment"],
        predictors=predictors,
        routed=tuple(v for v, _ in live),
        cumulative=tuple(cumulative),
        keys=frozenset(manifest.get("keys") or ()),
        sample_rate=float(manifest.get("sample_rate") or 0.0),
        extensions=dict(manifest.get("extensions") or {}),
        wanted=wanted,
    )


def _weights(cumulative: tuple[float, ...]) -> list[float]:
    return [c - (cumulative[i - 1] if i else 0.0) for i, c in enumerate(cumulative)]
