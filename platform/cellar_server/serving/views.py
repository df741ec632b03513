"""Pages: the deployments list and one deployment (routes, health, keys, traffic, drift)."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cellar_server.serving import selectors, services
from cellar_server.serving.apis import READ, WRITE
from cellar_server.serving.models import DeploymentKey
from cellar_server.serving.versions import (
    label_versions,
    version_aliases,
    version_choices,
    version_manifest,
    version_url,
)
from cellar_server.teams.pages import page_actor, run_service, team_page
from cellar_server.teams.selectors import TeamAccess


def serve_url(request: HttpRequest) -> str:
    return settings.CELLAR_SERVE_PUBLIC_URL


@team_page(READ)
def deployments(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    rows = selectors.deployment_list(team=access.team)
    label_versions(access.team, [route for row in rows for route in row.routes])
    can_write = WRITE in access.scopes
    context = {
        "access": access,
        "rows": rows,
        "can_write": can_write,
        "serve_url": serve_url(request),
        "choices": version_choices(team=access.team) if can_write else [],
    }
    return render(request, "serving/deployments.html", context)


@require_POST
@team_page(WRITE)
def deployment_create(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    created: dict[str, str] = {}

    def create() -> None:
        deployment = services.deployment_create(
            team=access.team,
            actor=page_actor(request),
            name=request.POST.get("name", ""),
            routes=[{"version_id": request.POST.get("version_id", ""), "weight": 1}],
        )
        created["name"] = deployment.name

    if run_service(request, create, success="Deployed. Serve loads the version within a few seconds."):
        return redirect("serving:deployment", team_slug=access.team.slug, deployment_name=created["name"])
    return redirect("serving:deployments", team_slug=access.team.slug)


def _routes_from_form(request: HttpRequest) -> list[dict[str, object]]:
    """Parallel `version_id` / `weight` fields (blank weight: drop the route), plus one optional new route."""
    routes = []
    pairs = list(zip(request.POST.getlist("version_id"), request.POST.getlist("weight"), strict=False))
    pairs.append((request.POST.get("add_version_id", ""), request.POST.get("add_weight", "")))
    for version_id, weight in pairs:
        weight = weight.strip()
        if not version_id or not weight:
            continue
        try:
            value: object = float(weight)
        except ValueError:
            value = weight  # the service names the bad weight
        if value != 0:
            routes.append({"version_id": version_id, "weight": value})
    return routes


@require_POST
@team_page(WRITE)
def routes_update(request: HttpRequest, access: TeamAccess, deployment_name: str) -> HttpResponse:
    found = selectors.deployment_get(team=access.team, name=deployment_name)
    if found is None:
        raise Http404("No such deployment.")
    run_service(
        request,
        lambda: services.deployment_update(
            team=access.team, actor=page_actor(request), deployment=found, routes=_routes_from_form(request)
        ),
        success="Routes saved. Serve loads any new version before it switches traffic.",
    )
    return redirect("serving:deployment", team_slug=access.team.slug, deployment_name=found.name)


DRIFT_TOP = 5  # stable features shown above the fold, after every warning and every error


def _natural(name: str) -> list[Any]:
    """Sort key: "p2" before "p10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(name))]


def drift_rows(versions: list[dict[str, Any]], top: int = DRIFT_TOP) -> list[dict[str, Any]]:
    """Each version's features by PSI, highest first (natural name order within ties), split into `shown`
    (warnings, the `top` highest stable ones, then any the PSI failed for) and `folded` (the rest, all stable)."""
    out = []
    for version in versions:
        ordered = sorted(
            version["features"],
            # Ties as shown (3 decimals) go by natural name order.
            key=lambda f: (not f["warning"], f["psi"] is None, -round(f["psi"] or 0, 3), _natural(f["feature"])),
        )
        warnings = [f for f in ordered if f["warning"]]
        errors = [f for f in ordered if f["psi"] is None]
        stable = [f for f in ordered if not f["warning"] and f["psi"] is not None]
        names = [f["feature"] for f in warnings]
        summary = ", ".join(names[:top]) + (f" and {len(names) - top} more" if len(names) > top else "")
        out.append(
            {**version, "warning_summary": summary, "shown": warnings + stable[:top] + errors, "folded": stable[top:]}
        )
    return out


@team_page(READ)
def deployment(request: HttpRequest, access: TeamAccess, deployment_name: str) -> HttpResponse:
    found = selectors.deployment_get(team=access.team, name=deployment_name)
    if found is None:
        raise Http404("No such deployment.")
    traffic = selectors.deployment_traffic(deployment=found)
    summary = selectors.deployment_summary(deployment=found)
    aliases = version_aliases(team=access.team, version_ids=[route.version_id for route in summary.routes])
    route_rows = [
        {
            "route": route,
            "aliases": aliases.get(str(route.version_id), []),
            "health": summary.health.get(route.version_id),
            "model": (model := version_manifest(team=access.team, version_id=route.version_id)),
            "url": version_url(team_slug=access.team.slug, manifest=model),
        }
        for route in summary.routes
    ]
    context = {
        "access": access,
        "summary": summary,
        "route_rows": route_rows,
        "deployment": found,
        "keys": selectors.deployment_keys(deployment=found),
        "traffic": traffic,
        "traffic_json": json.dumps(traffic["series"]),
        "drift": drift_rows(selectors.deployment_drift(deployment=found)),
        "can_write": WRITE in access.scopes,
        "choices": version_choices(team=access.team) if WRITE in access.scopes else [],
        "new_key": request.session.pop("serving_new_key", None),
        "predict_url": f"{serve_url(request).rstrip('/')}/serve/{access.team.slug}/{found.name}/predict",
    }
    return render(request, "serving/deployment.html", context)


@require_POST
@team_page(WRITE)
def key_create(request: HttpRequest, access: TeamAccess, deployment_name: str) -> HttpResponse:
    found = selectors.deployment_get(team=access.team, name=deployment_name)
    if found is None:
        raise Http404("No such deployment.")
    minted: dict[str, str] = {}

    def mint() -> None:
        key, raw = services.deployment_key_create(
            team=access.team, actor=page_actor(request), deployment=found, name=request.POST.get("name", "")
        )
        minted.update(name=key.name, key=raw)

    if run_service(request, mint):
        request.session["serving_new_key"] = minted
    return redirect("serving:deployment", team_slug=access.team.slug, deployment_name=found.name)


@require_POST
@team_page(WRITE)
def key_revoke(request: HttpRequest, access: TeamAccess, deployment_name: str, key_id: int) -> HttpResponse:
    key = DeploymentKey.objects.filter(deployment__name=deployment_name, pk=key_id).first()
    if key is None:
        raise Http404("No such key.")
    run_service(
        request,
        lambda: services.deployment_key_revoke(team=access.team, actor=page_actor(request), key=key),
        success=f"Key '{key.name}' revoked; serve refuses it from its next poll.",
    )
    return redirect("serving:deployment", team_slug=access.team.slug, deployment_name=deployment_name)
