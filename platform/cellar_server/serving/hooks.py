"""Plug-in points of the route manifest (the A/B-test app registers one at start-up).

An extension is `fn(deployment) -> (name, block, extra_version_ids) | None`. Its block is put
under `manifest["extensions"][name]` for the serve process, and every version id it names in
`extra_version_ids` is loaded by serve too (an arm that has no plain route, a shadow model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

ManifestExtension = Callable[[Any], "tuple[str, Any, Iterable[str]] | None"]

_extensions: list[ManifestExtension] = []


def register_manifest_extension(fn: ManifestExtension) -> ManifestExtension:
    """Register `fn` (idempotent; usable as a decorator)."""
    if fn not in _extensions:
        _extensions.append(fn)
    return fn


def unregister_manifest_extension(fn: ManifestExtension) -> None:
    if fn in _extensions:
        _extensions.remove(fn)


def manifest_extensions(deployment: Any) -> tuple[dict[str, Any], list[str]]:
    """Every extension's block for `deployment`, and the extra version ids they need loaded."""
    blocks: dict[str, Any] = {}
    extra: list[str] = []
    for fn in list(_extensions):
        result = fn(deployment)
        if result is None:
            continue
        name, block, version_ids = result
        blocks[name] = block
        extra.extend(str(v) for v in version_ids or ())
    return blocks, extra
