"""Pipeline pages: the list, a pipeline (versions, production alias and history), a version
(DAG, steps, parameters, environment) and the diff of two versions side by side.

Moving the alias from a page (promote a version, roll back) is a POST with the CSRF token
that redirects back (POST/redirect/GET); only admins (`pipelines:promote`) see the buttons
enabled, and the views refuse anyone else.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines import dag, diff, selectors, services
from cellar_server.pipelines.models import Pipeline, PipelineVersion, ProductionMove
from cellar_server.teams.pages import page_actor, run_service, team_page
from cellar_server.teams.selectors import TeamAccess

READ, PROMOTE = "pipelines:read", "pipelines:promote"
PAGE_SIZE = 50
HISTORY_ROWS = 20
# Lockfiles hold hundreds of packages; the version page lists the imported ones first.
ENV_PREVIEW = 12


def _pipeline_or_404(name: str) -> Pipeline:
    pipeline = selectors.pipeline_for_name(name=name)
    if pipeline is None:
        raise Http404("No such pipeline.")
    return pipeline


def _version_or_404(pipeline: Pipeline, ref: str, *, full: bool = True) -> PipelineVersion:
    try:
        version = selectors.version_for_ref(pipeline=pipeline, ref=ref, full=full)
    except ServiceError:
        version = None
    if version is None:
        raise Http404("No such version.")
    return version


def _pipeline_url(access: TeamAccess, pipeline: Pipeline) -> str:
    return reverse("pipelines:pipeline", kwargs={"team_slug": access.team.slug, "pipeline_name": pipeline.name})


@team_page(READ)
def pipeline_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    page = Paginator(selectors.pipeline_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "access": access,
        "page": page,
        "server_url": request.build_absolute_uri("/").rstrip("/"),
        "can_mint": "tokens:write" in access.scopes,
        "can_write": "pipelines:write" in access.scopes,
    }
    return render(request, "pipelines/list.html", context)


@team_page(READ)
def pipeline_detail(request: HttpRequest, access: TeamAccess, pipeline_name: str) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    page = Paginator(selectors.version_list(pipeline=pipeline), PAGE_SIZE).get_page(request.GET.get("page"))
    history = list(selectors.production_history(pipeline=pipeline)[: HISTORY_ROWS + 1])
    moves = ProductionMove.objects.filter(pipeline=pipeline).order_by("created_at", "id").only("kind", "to_version")
    target_id = services.rollback_target_id(moves) if history else None
    numbers = selectors.version_numbers(pipeline=pipeline)
    choices = [(number, short) for _, number, short in numbers]
    context = {
        "access": access,
        "pipeline": pipeline,
        "page": page,
        "history": history[:HISTORY_ROWS],
        "more_history": len(history) > HISTORY_ROWS,
        "rollback_to": next((number for pk, number, _ in numbers if pk == target_id), None),
        "can_promote": PROMOTE in access.scopes,
        "choices": choices,
        "compare_to": choices[0][0] if choices else None,
        "compare_from": choices[1][0] if len(choices) > 1 else None,
    }
    return render(request, "pipelines/pipeline.html", context)


@team_page(READ)
def version_detail(request: HttpRequest, access: TeamAccess, pipeline_name: str, ref: str) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    version = _version_or_404(pipeline, ref)
    spec = version.spec
    source = spec.get("source") or {}
    steps = [
        {"step": step, "source": source.get(step["name"]), "badges": dag.badges(step, full=True)}
        for step in spec["steps"]
    ]
    lock = spec.get("environment") or {}
    modules = spec.get("modules") or {}
    imported = sorted({(dist, lock.get(dist, "?")) for dist in modules.values()})
    context = {
        "access": access,
        "pipeline": pipeline,
        "version": version,
        "spec": spec,
        "steps": steps,
        "svg": dag.render_svg(spec),
        "edges": dag.edges_of(spec),
        "imported": imported,
        "modules": sorted(modules.items()),
        "lock": sorted(lock.items()),
        "is_production": pipeline.production_id == version.pk,
        "can_promote": PROMOTE in access.scopes,
        "previous": PipelineVersion.objects.filter(pipeline=pipeline, number__lt=version.number)
        .order_by("-number")
        .values_list("number", flat=True)
        .first(),
    }
    return render(request, "pipelines/version.html", context)


def _side_by_side_steps(result: dict, old: dict, new: dict) -> list[dict]:
    old_steps = {s["name"]: s for s in old.get("steps", [])}
    new_steps = {s["name"]: s for s in new.get("steps", [])}
    rows = []
    for step in result["steps"]:
        a, b = old_steps.get(step["name"], {}), new_steps.get(step["name"], {})
        rows.append(
            {
                **step,
                "code_rows": diff.side_by_side(a.get("code", ""), b.get("code", "")),
                "prelude_rows": diff.side_by_side(a.get("prelude", ""), b.get("prelude", ""))
                if step["prelude_diff"]
                else [],
            }
        )
    return rows


@team_page(READ)
def compare(request: HttpRequest, access: TeamAccess, pipeline_name: str) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    choices = [(number, short) for _, number, short in selectors.version_numbers(pipeline=pipeline)]
    if not choices:
        raise Http404("This pipeline has no versions.")
    default_to = str(choices[0][0])
    default_from = str(choices[1][0]) if len(choices) > 1 else default_to
    old = _version_or_404(pipeline, request.GET.get("from") or default_from)
    new = _version_or_404(pipeline, request.GET.get("to") or default_to)
    result = diff.version_diff(old.spec, new.spec, labels=(f"v{old.number}", f"v{new.number}"))
    context = {
        "access": access,
        "pipeline": pipeline,
        "old": old,
        "new": new,
        "result": result,
        "steps": _side_by_side_steps(result, old.spec, new.spec),
        "choices": choices,
    }
    return render(request, "pipelines/compare.html", context)


@team_page(PROMOTE)
@require_POST
def promote(request: HttpRequest, access: TeamAccess, pipeline_name: str) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    version = _version_or_404(pipeline, request.POST.get("version", ""), full=False)
    run_service(
        request,
        lambda: services.pipeline_production_move(
            team=access.team, pipeline=pipeline, version=version, actor=page_actor(request)
        ),
        success=f"Production is now version {version.number} ({version.short_hash}).",
    )
    return redirect(_pipeline_url(access, pipeline))


@team_page(PROMOTE)
@require_POST
def rollback(request: HttpRequest, access: TeamAccess, pipeline_name: str) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    moved = {}

    def act() -> None:
        moved["move"] = services.pipeline_production_rollback(
            team=access.team, pipeline=pipeline, actor=page_actor(request)
        )

    if run_service(request, act):
        version = pipeline.production
        messages.success(request, f"Rolled back: production is version {version.number} ({version.short_hash}) again.")
    return redirect(_pipeline_url(access, pipeline))
