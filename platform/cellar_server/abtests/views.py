"""Pages: the A/B tests list (with the create form) and one test's results."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cellar_server.abtests import aggregates, analysis, bridges, presentation, selectors, services
from cellar_server.abtests.apis import READ, WRITE
from cellar_server.abtests.models import ABTest
from cellar_server.core.exceptions import ServiceError
from cellar_server.teams.pages import page_actor, run_service, team_page
from cellar_server.teams.selectors import TeamAccess

STATE_LABELS = {
    "ready": "Ready to promote",
    "collecting": "Collecting data",
    "inconclusive": "No significant difference yet",
    "control_better": "Control is better",
    "guardrail_failed": "Guardrail failed",
    "srm_failed": "Sample ratio mismatch",
    "shadow": "Shadow mode",
}


def _deployments(access: TeamAccess) -> list:
    from cellar_server.serving.selectors import deployment_list

    return [s.deployment for s in deployment_list(team=access.team)]


@team_page(READ)
def test_list(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    tests = list(selectors.abtest_list(team=access.team))
    bridges.label_versions(team=access.team, items=[arm for test in tests for arm in test.arms.all()])
    return render(
        request,
        "abtests/list.html",
        {
            "access": access,
            "tests": tests,
            "deployments": _deployments(access),
            "can_write": WRITE in access.scopes,
            "form": request.session.pop("abtests_form", {}),
        },
    )


def _split(value: str) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


@require_POST
@team_page(WRITE)
def test_create(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    post = request.POST
    created: list[ABTest] = []

    def create() -> None:
        deployment = bridges.deployment_get(team=access.team, name=post.get("deployment", ""))
        if deployment is None:
            raise ServiceError("unknown_deployment", "Pick a deployment.")
        control = bridges.deployment_routes(deployment=deployment)
        control_id = max(control, key=lambda r: r["weight"])["version_id"] if control else ""
        challengers = _split(post.get("challengers", ""))
        ids = [control_id, *challengers]
        try:
            weights = [float(w) for w in _split(post.get("weights", ""))] or [1 / len(ids)] * len(ids)
            coverage = float(post.get("coverage") or 1)
        except ValueError:
            raise ServiceError("invalid_weights", "Weights and coverage are numbers, like '0.5, 0.5'.") from None
        metrics = [{"name": post.get("metric", "").strip(), "kind": post.get("kind", "proportion"), "role": "primary"}]
        if post.get("guardrail", "").strip():
            metrics.append(
                {
                    "name": post["guardrail"].strip(),
                    "kind": "mean",
                    "role": "guardrail",
                    "higher_is_better": post.get("guardrail_direction") == "higher",
                }
            )
        created.append(
            services.abtest_create(
                team=access.team,
                actor=page_actor(request),
                deployment_name=deployment.name,
                name=post.get("name", ""),
                variants=[{"version_id": v, "weight": w} for v, w in zip(ids, weights, strict=False)]
                if len(weights) == len(ids)
                else [{"version_id": v, "weight": "?"} for v in ids],
                metrics=metrics,
                coverage=coverage,
                shadow=post.get("shadow") == "on",
            )
        )

    if run_service(request, create):
        return redirect("abtests:detail", team_slug=access.team.slug, test_id=created[0].pk)
    request.session["abtests_form"] = {k: post.get(k, "") for k in post if k != "csrfmiddlewaretoken"}
    return redirect("abtests:list", team_slug=access.team.slug)


def _chart_data(result: dict, displays: dict[str, str]) -> dict:
    forest = []
    for metric in result["metrics"]:
        for comp in metric["comparisons"]:
            seq, fixed = comp["sequential"], comp["frequentist"]
            if seq.get("error"):
                continue
            forest.append(
                {
                    "label": f"{metric['name']} · {displays.get(comp['arm'], comp['arm'])}",
                    "role": metric["role"],
                    "lift": seq["lift"],
                    "lo": seq["ci"][0],
                    "hi": seq["ci"][1],
                    "fixed_lo": fixed["ci"][0],
                    "fixed_hi": fixed["ci"][1],
                }
            )
    timeline = result.get("timeline", {})
    for series in timeline.get("series", []):
        series["arm"] = displays.get(series["arm"], series["arm"])
    return {"forest": forest, "timeline": timeline}


@team_page(READ)
def test_detail(request: HttpRequest, access: TeamAccess, test_id: int) -> HttpResponse:
    test = selectors.abtest_get(team=access.team, test_id=test_id)
    if test is None:
        raise Http404("No such A/B test.")
    if test.refreshed_at is None:
        aggregates.aggregates_refresh(test=test)
        test.refresh_from_db(fields=["refreshed_at"])
    result = analysis.analyse(test=test)
    displays = presentation.label_arms(test=test, result=result)
    decision = result["decision"]
    return render(
        request,
        "abtests/detail.html",
        {
            "access": access,
            "test": test,
            "result": result,
            "decision": decision,
            "state_label": STATE_LABELS.get(decision["state"], decision["state"]),
            "chart_json": json.dumps(_chart_data(result, displays)),
            "winner_display": displays.get(test.winner_arm, test.winner_arm),
            "outcome": presentation.outcome(test=test, arms=result["arms"], displays=displays),
            "can_write": WRITE in access.scopes,
            "running": test.status == ABTest.RUNNING,
        },
    )


def _action(request: HttpRequest, access: TeamAccess, test_id: int, fn, success: str, **kwargs) -> HttpResponse:
    test = selectors.abtest_get(team=access.team, test_id=test_id)
    if test is None:
        raise Http404("No such A/B test.")
    run_service(request, lambda: fn(test=test, actor=page_actor(request), **kwargs), success=success)
    return redirect("abtests:detail", team_slug=access.team.slug, test_id=test_id)


@require_POST
@team_page(READ)
def test_refresh(request: HttpRequest, access: TeamAccess, test_id: int) -> HttpResponse:
    test = selectors.abtest_get(team=access.team, test_id=test_id)
    if test is None:
        raise Http404("No such A/B test.")
    aggregates.aggregates_refresh(test=test)
    return redirect("abtests:detail", team_slug=access.team.slug, test_id=test_id)


@require_POST
@team_page(WRITE)
def test_stop(request: HttpRequest, access: TeamAccess, test_id: int) -> HttpResponse:
    return _action(request, access, test_id, services.abtest_stop, "Test stopped.", reason=request.POST.get("reason"))


@require_POST
@team_page(WRITE)
def test_extend(request: HttpRequest, access: TeamAccess, test_id: int) -> HttpResponse:
    try:
        days = float(request.POST.get("days") or 7)
    except ValueError:
        days = "?"
    return _action(request, access, test_id, services.abtest_extend, "Test extended.", days=days)


@require_POST
@team_page(WRITE)
def test_promote(request: HttpRequest, access: TeamAccess, test_id: int) -> HttpResponse:
    test = selectors.abtest_get(team=access.team, test_id=test_id)
    if test is not None and test.status == ABTest.RUNNING:
        aggregates.aggregates_refresh(test=test)
    return _action(
        request,
        access,
        test_id,
        services.abtest_promote,
        "Winner promoted: the deployment routes 100% to it and 'champion' points at it.",
        arm_key=request.POST.get("arm") or None,
        reason=request.POST.get("reason", ""),
    )
