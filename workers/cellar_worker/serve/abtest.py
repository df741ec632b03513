"""A/B assignment in the serve process (issue 11): GrowthBook hash v2, sticky by unit id.

The control plane puts an "abtest" block in a deployment's manifest while a test runs
(`cellar_server.abtests.integration.abtest_manifest_block`):

    {"test_id", "seed", "hash_version": 2, "phase", "coverage", "shadow",
     "control_version_id", "variants": [{"key", "version_id", "weight"}, ...]}

`assign(block, unit_id)` returns (version_id, variant_key, enrolled, shadow_version_ids):
enrolled units get their arm's version (in shadow mode: the control's, with the arm's version
predicting the same row after the response, never returned); a unit outside coverage gets the
control and is not enrolled. A unit's first exposure per phase is appended to an outbox that a
background thread flushes to POST /api/v1/ab-tests/exposures/ (the server keeps the first one
per unit and phase, so a restart re-sending some is harmless). The request path costs two
FNV-1a hashes, a set lookup and a deque append.
"""

from __future__ import annotations

import time
from typing import Any

from cellar.abstats.assignment import Assigner

EXPOSURES_PATH = "/api/v1/ab-tests/exposures/"
SEEN_LIMIT = 2_000_000  # units remembered per process before the set is reset (the server deduplicates anyway)


class _Phase:
    __slots__ = ("assigner", "control", "keys", "versions", "shadow", "test_id", "phase", "seen")

    def __init__(self, block: dict[str, Any]):
        variants = block["variants"]
        self.assigner = Assigner(str(block["seed"]), [float(v["weight"]) for v in variants], float(block["coverage"]))
        self.control = str(block.get("control_version_id") or variants[0]["version_id"])
        self.keys = [str(v["key"]) for v in variants]
        self.versions = [str(v["version_id"]) for v in variants]
        self.shadow = bool(block.get("shadow"))
        self.test_id = block["test_id"]
        self.phase = block["phase"]
        self.seen: set[str] = set()


_phases: dict[tuple, _Phase] = {}
_outbox = None  # cellar_worker.serve.outbox.Outbox once configure() ran
_pending: list[dict[str, Any]] = []  # exposures recorded before configure() (tests, tools)


def _phase_for(block: dict[str, Any]) -> _Phase:
    key = (block["test_id"], block["phase"], block["coverage"], block["seed"], block.get("shadow"))
    phase = _phases.get(key)
    if phase is None:
        if len(_phases) > 256:
            _phases.clear()
        phase = _phases[key] = _Phase(block)
    return phase


def assign(block: Any, unit_id: Any) -> tuple[str, str | None, bool, list[str]] | None:
    if not block or unit_id is None:
        return None
    phase = _phase_for(block)
    unit = str(unit_id)
    arm = phase.assigner.assign(unit)
    if arm < 0:
        return phase.control, None, False, []
    if unit not in phase.seen:
        if len(phase.seen) >= SEEN_LIMIT:
            phase.seen.clear()
        phase.seen.add(unit)
        record = {"test_id": phase.test_id, "phase": phase.phase, "unit_id": unit, "arm": arm, "at": time.time()}
        (_outbox.put if _outbox is not None else _pending.append)(record)
    if phase.shadow:
        return phase.control, phase.keys[arm], True, ([phase.versions[arm]] if arm else [])
    return phase.versions[arm], phase.keys[arm], True, []


def record_shadow(block: Any, version_id: str, indexes: list[int], outputs: list) -> None:
    """Shadow answers are counted by serve's per-version stats; nothing else is kept here."""


def configure(config: Any) -> None:
    """Start the exposures outbox (called once by the serve app at start-up)."""
    global _outbox
    from cellar_worker.serve.outbox import Outbox

    _outbox = Outbox(
        config.url(EXPOSURES_PATH),
        config.token,
        flush_seconds=config.flush_seconds,
        max_batch=max(config.flush_max, 5000),
        capacity=config.outbox_capacity,
    ).start()
    while _pending:
        _outbox.put(_pending.pop(0))


def flush() -> int:
    return _outbox.flush() if _outbox is not None else 0


def close() -> None:
    global _outbox
    if _outbox is not None:
        _outbox.stop(flush=True)
        _outbox = None
    _phases.clear()
