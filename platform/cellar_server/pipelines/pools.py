"""Pools and their environments, as the promote check sees them.

A thin seam until the compute app exists: the pools come from the `CELLAR_POOLS` setting
(environment variable, JSON), and every pool's environment is this server interpreter's.
That is honest on one machine, where `make up` runs the pool agents in the same virtual
environment as the web process; once pools run elsewhere, the compute app will report each
pool's own lock (from its workers' heartbeats) and replace `pool_environment`.

`CELLAR_POOLS` is a JSON object, name -> what one task may get there:

    {"cpu": {"cpu": 8, "memory": "32Gi"}, "gpu": {"cpu": 8, "memory": "64Gi", "gpu": 1}}

`memory` is bytes or a size written as in a `memory:` cell tag (`512Mi`, `32Gi`, `2G`);
null or absent means not limited. Unset, the single `cpu` pool offers this machine's cores and
memory and no GPU; a `gpu` pool exists only when configured.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cellar.pipelines.environment import current_environment
from cellar.pipelines.spec import Environment, PoolOffer
from cellar.pipelines.tags import parse_size as parse_size_text

DEFAULT_POOL = "cpu"


def parse_size(value: object) -> int | None:
    """Bytes from an int or a size like '32Gi' (the `memory:` tag's grammar); None = not limited."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return int(value)
    try:
        return parse_size_text(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a size like 32Gi or 512Mi") from None


def machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return None


def default_pools() -> dict[str, PoolOffer]:
    return {DEFAULT_POOL: PoolOffer(name=DEFAULT_POOL, cpu=float(os.cpu_count() or 1), memory=machine_memory(), gpu=0)}


def parse_pools(raw: str | dict | None) -> dict[str, PoolOffer]:
    """The pools a `CELLAR_POOLS` value describes; raises ImproperlyConfigured saying what is wrong."""
    if raw in (None, "", {}):
        return default_pools()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"CELLAR_POOLS is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise ImproperlyConfigured('CELLAR_POOLS must be a JSON object like {"cpu": {"cpu": 8, "memory": "32Gi"}}.')
    offers = {}
    for name, spec in raw.items():
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", str(name)):
            raise ImproperlyConfigured(f"CELLAR_POOLS: '{name}' is not a pool name (lowercase letters, digits, - _).")
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}'] must be an object with cpu, memory and gpu.")
        unknown = set(spec) - {"cpu", "memory", "gpu"}
        if unknown:
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}'] has unknown keys: {', '.join(sorted(unknown))}.")
        try:
            cpu = float(spec.get("cpu", os.cpu_count() or 1))
            gpu = int(spec.get("gpu", 0))
            memory = parse_size(spec.get("memory"))
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}']: {exc}") from None
        if cpu <= 0 or gpu < 0:
            raise ImproperlyConfigured(f"CELLAR_POOLS['{name}']: cpu must be positive and gpu not negative.")
        offers[name] = PoolOffer(name=name, cpu=cpu, memory=memory, gpu=gpu)
    return offers


def pool_offers() -> dict[str, PoolOffer]:
    """name -> PoolOffer for every pool this platform runs."""
    return parse_pools(getattr(settings, "CELLAR_POOLS", None))


def pool_environment(pool: str, modules: Iterable[str] = ()) -> Environment:
    """What pool `pool` has installed, with `modules` resolved to their distributions.

    One machine: the pool agents run in this interpreter's virtual environment, so its lock
    is the pool's (see the module docstring for what replaces this).
    """
    return current_environment(modules)
