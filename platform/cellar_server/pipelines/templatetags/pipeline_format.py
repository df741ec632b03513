"""Template filters for the pipeline pages: JSON values, sizes, change cells."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def as_json(value: Any) -> str:
    """A parameter default or a changed field, as the JSON a person would write."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@register.filter
def size(value: int | None) -> str:
    if value is None:
        return "not limited"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" or amount >= 100 else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


@register.filter
def get(mapping: dict, key: str) -> Any:
    return (mapping or {}).get(key)


@register.filter
def seconds(value: float | None) -> str:
    """A duration for people: 0.4 s, 12 s, 3 min 05 s, 2 h 04 min; — when it has not started."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s"
    total = int(round(value))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def split(value: str) -> list[str]:
    return str(value).split()
