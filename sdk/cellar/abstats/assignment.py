"""Deterministic, sticky assignment of units to arms: GrowthBook's hash v2.

`hash_v2(seed, unit)` = fnv1a32(str(fnv1a32(seed + unit))) % 10000 / 10000, and
each arm owns the range [start_i, start_i + coverage·w_i) where start_i is the
cumulative weight. Range starts do not depend on coverage, so ramping coverage
up or down never moves an enrolled unit to another arm; changing weights moves
the boundaries (which is why a weight change starts a new phase).

Port of `packages/sdk-js/src/util.ts` (MIT); checked against its test vectors
in tests/sdk/abstats/data/growthbook-assignment-cases.json. No dependencies:
the serve process imports this on its hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over UTF-16 code units, as JavaScript's charCodeAt sees them."""
    h = _FNV_OFFSET
    if text.isascii():
        units = text.encode("ascii")
    else:
        raw = text.encode("utf-16-le")
        units = [raw[i] | (raw[i + 1] << 8) for i in range(0, len(raw), 2)]
    for c in units:
        h = ((h ^ c) * _FNV_PRIME) & _MASK
    return h


def hash_value(seed: str, value: str, version: int = 2) -> float | None:
    """GrowthBook `hash()`: a number in [0, 1). v1 is kept for reference only (it
    correlates across experiments); Cellar assigns with v2."""
    if version == 2:
        return fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000
    if version == 1:
        return fnv1a32(value + seed) % 1000 / 1000
    return None


def equal_weights(n: int) -> list[float]:
    return [1 / n] * n if n > 0 else []


def bucket_ranges(n: int, coverage: float = 1.0, weights: Sequence[float] | None = None) -> list[tuple[float, float]]:
    """GrowthBook `getBucketRanges`: coverage clamped to [0, 1]; weights of the wrong
    length or not summing to 1 (±0.01) fall back to equal weights."""
    coverage = min(max(coverage, 0.0), 1.0)
    w = list(weights) if weights is not None else equal_weights(n)
    if len(w) != n or not 0.99 <= sum(w) <= 1.01:
        w = equal_weights(n)
    ranges = []
    cumulative = 0.0
    for weight in w:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """Index of the range holding n, or −1 when the unit falls outside coverage."""
    for i, (lo, hi) in enumerate(ranges):
        if lo <= n < hi:
            return i
    return -1


def in_namespace(unit: str, namespace: tuple[str, float, float]) -> bool:
    """GrowthBook namespaces (mutual exclusion between experiments), hash v1."""
    n = hash_value("__" + namespace[0], unit, 1)
    return n is not None and namespace[1] <= n < namespace[2]


class Assigner:
    """Precomputed ranges for one test phase; `assign(unit)` is the hot path."""

    __slots__ = ("seed", "ranges")

    def __init__(self, seed: str, weights: Sequence[float], coverage: float = 1.0):
        self.seed = seed
        self.ranges = bucket_ranges(len(weights), coverage, weights)

    def assign(self, unit: str) -> int:
        n = fnv1a32(str(fnv1a32(self.seed + unit))) % 10000 / 10000
        for i, (lo, hi) in enumerate(self.ranges):
            if lo <= n < hi:
                return i
        return -1
