"""`{% team_storage access %}`: the storage a team uses, as the last sweep measured it (the
admin console's Quotas page shows it without the teams app importing this one)."""

from __future__ import annotations

from django import template

from cellar_server.data import selectors

register = template.Library()


@register.inclusion_tag("data/_storage.html")
def team_storage(access) -> dict:
    return {"access": access, "storage": selectors.storage_measured(team=access.team)}
