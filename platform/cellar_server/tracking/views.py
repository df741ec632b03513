"""Tracking dashboards: experiments, an experiment's runs table, a run, compare; charts and artifacts.

Pages render whole on a normal request. htmx requests that name a fragment as
their target (HX-Target) get only that fragment: the runs table while filtering,
sorting and paging, a directory listing or preview in the artifact browser, one
metric chart. Responses vary on HX-Request so a browser cache never serves a
fragment for a full page.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers

from cellar_server.teams.pages import team_page
from cellar_server.teams.selectors import TeamAccess
from cellar_server.tracking import dashboards
from cellar_server.tracking.errors import TrackingError

READ = "experiments:read"


def _fragment_for(request: HttpRequest, target: str) -> bool:
    """An htmx request aimed at `target`; history restores want the whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and not request.headers.get("HX-History-Restore-Request")
        and request.headers.get("HX-Target") == target
    )


def _render(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _query(**params) -> str:
    query = QueryDict(mutable=True)
    for key, value in params.items():
        if isinstance(value, list):
            query.setlist(key, value)
        elif value not in (None, ""):
            query[key] = str(value)
    return query.urlencode()


# --- experiments ------------------------------------------------------------------------------------------


@team_page(READ)
def experiments(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    listing = dashboards.experiment_list(team=access.team, query=query, page_number=request.GET.get("page"))
    context = {
        "access": access,
        "listing": listing,
        "page": listing.page,
        "query": query,
        "page_query": _query(q=query),
        "tracking_uri": request.build_absolute_uri(f"/t/{access.team.slug}/mlflow"),
        "can_mint": "tokens:write" in access.scopes,
    }
    return _render(request, "tracking/experiments.html", context)


# --- runs table -------------------------------------------------------------------------------------------

SORT_FIRST_DESCENDING = {"metric", "start_time"}  # a first click on these shows the biggest or newest first


def _header(label: str, kind: str, key: str, sort, state: dict) -> dict:
    active = sort is not None and sort.kind == kind and sort.key == key
    if kind == "attribute" and key == "start_time" and sort is None:
        active, ascending = True, False  # the grammar's default order
    else:
        ascending = bool(sort and sort.ascending)
    if active:
        next_ascending = not ascending
    else:
        next_ascending = not (kind in SORT_FIRST_DESCENDING or key in SORT_FIRST_DESCENDING)
    if kind == "attribute":
        clause = f"attributes.{key} {'ASC' if next_ascending else 'DESC'}"
    else:
        clause = dashboards.Column(kind, key).order_clause(ascending=next_ascending)
    return {
        "label": label,
        "kind": kind,
        "key": key,
        "active": active,
        "ascending": ascending,
        "query": _query(**{**state, "order": clause}),
    }


@team_page(READ)
def experiment_runs(request: HttpRequest, access: TeamAccess, number: int) -> HttpResponse:
    experiment = dashboards.experiment_for_page(number=number)
    if experiment is None:
        raise Http404("No such experiment.")
    filter_string = request.GET.get("filter", "").strip()
    order = request.GET.get("order", "").strip()
    chosen = dashboards.parse_columns(request.GET.getlist("col")) if "col" in request.GET else None
    table = dashboards.run_table(
        team=access.team,
        experiment=experiment,
        filter_string=filter_string,
        order=order,
        columns=chosen,
        page_number=request.GET.get("page"),
    )
    # Links carry the columns explicitly (an empty `col` marks "chosen, maybe none") so they stay put.
    state = {"filter": filter_string, "order": order, "col": [""] + [c.id for c in table.columns]}
    sort = dashboards.sort_state(order)
    headers = [
        _header(label, "attribute", key, sort, state) if key != "duration" else {"label": label}
        for key, label in dashboards.ATTRIBUTE_COLUMNS
    ]
    headers += [_header(c.key, c.kind, c.key, sort, state) for c in table.columns]
    context = {
        "access": access,
        "experiment": experiment,
        "table": table,
        "headers": headers,
        "filter": filter_string,
        "order": order,
        "state_query": _query(**state),
        "columns_query": _query(col=[c.id for c in table.columns]),
        "page_size": dashboards.PAGE_SIZE,
        "max_compare": dashboards.MAX_COMPARE_RUNS,
        "tracking_uri": request.build_absolute_uri(f"/t/{access.team.slug}/mlflow"),
    }
    context["fragment"] = _fragment_for(request, "runs-results")
    return _render(request, "tracking/_runs_results.html" if context["fragment"] else "tracking/runs.html", context)


@team_page(READ)
def experiment_columns(request: HttpRequest, access: TeamAccess, number: int) -> HttpResponse:
    """The column picker's choices, fetched when it is first opened (an experiment may hold thousands of keys)."""
    experiment = dashboards.experiment_for_page(number=number)
    if experiment is None:
        raise Http404("No such experiment.")
    choices = dashboards.experiment_column_choices(experiment=experiment)
    chosen = {c.id for c in dashboards.parse_columns(request.GET.getlist("col"))}
    groups = [
        (title, [(f"{dashboards.KIND_PREFIX[kind]}.{key}", key) for key in choices[kind]])
        for kind, title in (("metric", "Metrics"), ("param", "Parameters"), ("tag", "Tags"))
    ]
    return _render(request, "tracking/_column_choices.html", {"groups": groups, "chosen": chosen})


# --- run page ---------------------------------------------------------------------------------------------


def _run_or_404(run_uuid: str):
    run = dashboards.run_for_page(run_uuid=run_uuid)
    if run is None:
        raise Http404("No such run.")
    return run


def _artifact_view(access: TeamAccess, run, path: str):
    try:
        view = dashboards.artifact_view(team=access.team, run=run, path=path)
    except TrackingError:  # '..', absolute paths: refused like a missing file
        raise Http404("No such artifact.") from None
    if view is None and path:
        raise Http404("No such artifact.")
    return view


@team_page(READ)
def run_detail(request: HttpRequest, access: TeamAccess, run_uuid: str) -> HttpResponse:
    run = _run_or_404(run_uuid)
    detail = dashboards.run_detail(run=run)
    context = {
        "access": access,
        "run": run,
        "detail": detail,
        "duration": dashboards.format_duration(run.start_time, run.end_time),
        "browser": _artifact_view(access, run, request.GET.get("path", "")),
        "artifact_root": dashboards.artifact_root(run),
        "chart_keys": [m.key for m in detail.metrics],
    }
    return _render(request, "tracking/run.html", context)


@team_page(READ)
def run_artifacts(request: HttpRequest, access: TeamAccess, run_uuid: str) -> HttpResponse:
    """The artifact browser at `?path=`: a directory's listing, or a file's preview beside its folder."""
    run = _run_or_404(run_uuid)
    path = request.GET.get("path", "")
    browser = _artifact_view(access, run, path)
    if not _fragment_for(request, "artifacts"):
        url = reverse("tracking:run", kwargs={"team_slug": access.team.slug, "run_uuid": run.run_uuid})
        return redirect(f"{url}?{_query(path=path)}#artifacts")
    context = {"access": access, "run": run, "browser": browser, "artifact_root": dashboards.artifact_root(run)}
    return _render(request, "tracking/_artifacts.html", context)


@team_page(READ)
def run_artifact_file(request: HttpRequest, access: TeamAccess, run_uuid: str, path: str) -> HttpResponse:
    """A run's file: images inline with their own type (for previews), anything else as a download."""
    run = _run_or_404(run_uuid)
    try:
        stream, size, content_type = dashboards.artifact_file(team=access.team, run=run, path=path)
    except TrackingError:
        raise Http404("No such artifact.") from None
    name = path.rsplit("/", 1)[-1]
    response = FileResponse(
        stream,
        content_type=content_type or "application/octet-stream",
        as_attachment=content_type is None,
        filename=name,
    )
    response["Content-Length"] = str(size)
    response["X-Content-Type-Options"] = "nosniff"
    # User files are served from our origin: an SVG opened directly must not run scripts here.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
    return response


# --- charts -----------------------------------------------------------------------------------------------


@team_page(READ)
def metric_chart(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    """One metric's curves for up to 100 runs, downsampled on the server; drawn by tracking.js."""
    ids = dashboards.parse_run_ids(request.GET.getlist("runs"))
    key = request.GET.get("key", "")
    if not key or not ids or len(ids) > dashboards.MAX_COMPARE_RUNS:
        return _render(request, "tracking/_metric_chart.html", {"error": "Choose a metric and 1–100 runs."}, 400)
    runs = dashboards.runs_by_uuid(uuids=ids)
    if not runs:
        raise Http404("No such run.")
    chart = dashboards.metric_chart(runs=runs, key=key)
    return _render(request, "tracking/_metric_chart.html", {"chart": chart})


# --- compare ----------------------------------------------------------------------------------------------


@team_page(READ)
def compare(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    ids = dashboards.parse_run_ids(request.GET.getlist("runs") + request.GET.getlist("run"))
    context: dict = {"access": access, "requested": len(ids), "max_compare": dashboards.MAX_COMPARE_RUNS}
    if len(ids) > dashboards.MAX_COMPARE_RUNS:
        return _render(request, "tracking/compare.html", {**context, "too_many": True}, status=400)
    if not ids:
        return _render(request, "tracking/compare.html", context)
    runs = dashboards.runs_by_uuid(uuids=ids)
    if not runs:
        raise Http404("None of these runs exist in this team.")
    comparison = dashboards.compare_runs(runs=runs)
    metric_keys = comparison.metric_keys
    if "metric" in request.GET:  # chosen, possibly none: the form sends an empty value too
        charted = [k for k in request.GET.getlist("metric") if k in metric_keys]
    else:
        charted = metric_keys[: dashboards.DEFAULT_CHARTS]
    runs_param = ",".join(r.run_uuid for r in comparison.runs)
    experiments = {r.experiment_id: r.experiment for r in comparison.runs}
    context.update(
        {
            "comparison": comparison,
            "runs_and_colors": list(zip(comparison.runs, comparison.colors, strict=True)),
            "missing": len(ids) - len(comparison.runs),
            "charted": charted,
            "runs_param": runs_param,
            "color_metric": _pick(request.GET.get("color"), metric_keys),
            "x_key": request.GET.get("x") or _default_x(comparison),
            "y_key": _pick(request.GET.get("y"), metric_keys),
            "experiment": next(iter(experiments.values())) if len(experiments) == 1 else None,
        }
    )
    return _render(request, "tracking/compare.html", context)


def _default_x(comparison: dashboards.Comparison) -> str:
    """The scatter's x axis: a numeric parameter that varies reads best, then any parameter."""
    params = comparison.plot_data["params"]
    varying = [k for k, values in params.items() if len(set(values)) > 1]
    numeric = [k for k in varying if all(isinstance(v, float) for v in params[k])]
    chosen = (numeric or varying or list(params))[:1]
    return f"params.{chosen[0]}" if chosen else ""


def _pick(wanted: str | None, keys: list[str]) -> str:
    if wanted in keys:
        return wanted
    return keys[0] if keys else ""
