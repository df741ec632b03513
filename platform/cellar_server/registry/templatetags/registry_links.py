"""Registry links on other apps' pages, without those apps importing the registry:

{% load registry_links %}{% registered_as access run %}   the tracking run page's "Registered as"
"""

from __future__ import annotations

from typing import Any

from django import template

from cellar_server.core.scoping import team_scope
from cellar_server.registry.models import ModelVersion

register = template.Library()


@register.inclusion_tag("registry/_registered_as.html")
def registered_as(access, run) -> dict[str, Any]:
    with team_scope(access.team.id):
        versions = list(
            ModelVersion.objects.filter(run_uuid=run.run_uuid)
            .select_related("model")
            .order_by("model__name", "version")
        )
    return {"access": access, "versions": versions}
