"""Registry pages: models list, a model (versions, aliases, metrics across versions), a version
(lineage, alias history) and the diff of two versions. Moving an alias from a page is a POST with
the CSRF token (POST/redirect/GET); only `models:promote` sees the form."""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cellar_server.registry import lineage, selectors, services
from cellar_server.registry.errors import RegistryError
from cellar_server.registry.models import ModelVersion, RegisteredModel
from cellar_server.teams.pages import page_actor, run_service, team_page
from cellar_server.teams.selectors import TeamAccess

READ, PROMOTE = "models:read", "models:promote"
PAGE_SIZE = 50


def _model_or_404(access: TeamAccess, name: str) -> RegisteredModel:
    try:
        return selectors.model_for_name(team=access.team, name=name)
    except RegistryError:
        raise Http404("No such model.") from None


def _version_or_404(access: TeamAccess, name: str, version: int) -> ModelVersion:
    try:
        return selectors.model_version_get(team=access.team, name=name, version=version)
    except RegistryError:
        raise Http404("No such version.") from None


@team_page(READ)
def model_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.model_list(team=access.team, search=search), PAGE_SIZE).get_page(request.GET.get("page"))
    aliases = selectors.alias_maps(team=access.team, models=page.object_list)
    rows = [{"model": m, "aliases": sorted(aliases[m.pk].items())} for m in page.object_list]
    context = {
        "access": access,
        "page": page,
        "rows": rows,
        "search": search,
        "server_url": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "registry/list.html", context)


@team_page(READ)
def model_detail(request: HttpRequest, access: TeamAccess, name: str) -> HttpResponse:
    model = _model_or_404(access, name)
    versions = list(selectors.versions_for(team=access.team, model=model).select_related("created_by")[:200])
    by_version = selectors.aliases_by_version(team=access.team, models=[model])
    series = selectors.metrics_across_versions(team=access.team, model=model)
    aliases = selectors.alias_map(team=access.team, model=model)
    context = {
        "access": access,
        "model": model,
        "versions": [{"v": v, "aliases": by_version.get(v.pk, [])} for v in versions],
        "aliases": sorted(aliases.items()),
        "moves": selectors.alias_moves(team=access.team, model=model, limit=20),
        "chart": {k: {"x": [p[0] for p in pts], "y": [p[1] for p in pts]} for k, pts in series.items()},
        "has_chart": any(len(p) for p in series.values()),
        "can_promote": PROMOTE in access.scopes,
        "compare_from": versions[1].version if len(versions) > 1 else None,
        "compare_to": versions[0].version if versions else None,
    }
    return render(request, "registry/model.html", context)


@team_page(READ)
def version_detail(request: HttpRequest, access: TeamAccess, name: str, version: int) -> HttpResponse:
    found = _version_or_404(access, name, version)
    model = found.model
    moves = [
        m
        for m in selectors.alias_moves(team=access.team, model=model, limit=200)
        if found.version in (m.from_version, m.to_version)
    ]
    signature = None
    if found.signature and found.signature.get("inputs"):
        try:
            signature = json.loads(found.signature["inputs"])
        except (TypeError, ValueError):
            signature = None
    others = list(
        selectors.versions_for(team=access.team, model=model)
        .exclude(pk=found.pk)
        .values_list("version", flat=True)[:200]
    )
    context = {
        "access": access,
        "model": model,
        "version": found,
        "aliases": selectors.aliases_by_version(team=access.team, models=[model]).get(found.pk, []),
        "lineage": lineage.version_lineage(team=access.team, version=found),
        "moves": moves,
        "signature": signature,
        "profile_features": sorted((found.profile or {}).get("features", {}).items()),
        "others": others,
        "can_promote": PROMOTE in access.scopes,
    }
    return render(request, "registry/version.html", context)


@team_page(READ)
def version_compare(request: HttpRequest, access: TeamAccess, name: str) -> HttpResponse:
    model = _model_or_404(access, name)
    try:
        old = _version_or_404(access, name, int(request.GET.get("from", "")))
        new = _version_or_404(access, name, int(request.GET.get("to", "")))
    except ValueError:
        raise Http404("Pick two versions to compare.") from None
    context = {
        "access": access,
        "model": model,
        "old": old,
        "new": new,
        "diff": lineage.version_diff(team=access.team, old=old, new=new),
    }
    return render(request, "registry/compare.html", context)


@require_POST
@team_page(PROMOTE)
def alias_set(request: HttpRequest, access: TeamAccess, name: str) -> HttpResponse:
    model = _model_or_404(access, name)
    alias = request.POST.get("alias", "").strip()
    version = request.POST.get("version", "")
    run_service(
        request,
        lambda: services.model_alias_set(
            team=access.team,
            actor=page_actor(request),
            model=model,
            alias=alias,
            version=version,
            reason=request.POST.get("reason", "").strip() or None,
        ),
        success=f"'{alias}' now points at v{version}.",
    )
    return redirect("registry:model", team_slug=access.team.slug, name=model.name)
