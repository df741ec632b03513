"""The dashboard navigation every page shares.

A section links to its page once the app that owns it registers the URL name;
until then it is shown, disabled, so the layout stays stable as apps land.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url_name: str
    url: str | None
    active: bool


# (key, label, URL name of the section's landing page, URL-name prefixes that belong to it)
SECTIONS = [
    ("workspace", "Workspace", "workspaces:home", ("workspaces:",)),
    ("experiments", "Experiments", "tracking:experiments", ("tracking:",)),
    ("pipelines", "Pipelines", "pipelines:list", ("pipelines:",)),
    ("models", "Models", "registry:models", ("registry:",)),
    ("deployments", "Deployments", "serving:deployments", ("serving:",)),
    ("abtests", "A/B tests", "abtests:list", ("abtests:",)),
    ("compute", "Compute", "compute:pools", ("compute:",)),
    ("data", "Data", "data:overview", ("data:",)),
    ("admin", "Admin", "teams:members", ("teams:members", "teams:tokens", "teams:quotas", "teams:audit")),
]


def navigation(request: HttpRequest) -> dict:
    match = getattr(request, "resolver_match", None)
    team_slug = match.kwargs.get("team_slug") if match else None
    if not team_slug:
        return {"nav_items": []}
    current = f"{match.namespace}:{match.url_name}" if match.namespace else match.url_name
    items = []
    for key, label, url_name, prefixes in SECTIONS:
        try:
            url = reverse(url_name, kwargs={"team_slug": team_slug})
        except NoReverseMatch:
            url = None
        active = bool(current) and current.startswith(prefixes)
        items.append(NavItem(key, label, url_name, url, active))
    # A team page's decorator records the team's name once access is checked; other pages show the slug.
    team_name = getattr(request, "cellar_team_name", None) or team_slug
    return {"nav_items": items, "nav_team_slug": team_slug, "nav_team_name": team_name}
