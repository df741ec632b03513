"""Render audit details for people: changes as "a → b", lists joined."""

from django import template

register = template.Library()


@register.filter
def audit_value(value):
    if isinstance(value, dict) and set(value) == {"from", "to"}:
        return f"{value['from']} → {value['to']}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    if value is None:
        return "—"
    return str(value)
