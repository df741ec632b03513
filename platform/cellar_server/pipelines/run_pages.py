"""Run pages: a pipeline's runs, a run (live DAG, fan-out progress, tasks), a task (attempts,
logs, inputs and outputs with their lineage, "Debug in a notebook"), and the buttons that act on
them (cancel, resume, retry a failed task).

Live without reloading: the run's summary, DAG and progress, its task table and a task's panel
are small fragments that htmx polls every POLL_SECONDS while the run is not finished; the
fragment of a finished run is sent without its polling trigger, so polling stops by itself.
A 20,000-task run costs the same few queries as a small one: aggregated counts per step and
state, one page of narrow task rows (tests pin the query counts).

Acting needs `pipelines:run` (editors and up): viewers see no buttons, and the views refuse them.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from cellar_server.pipelines import dag, selectors
from cellar_server.pipelines.engine import runs as engine_runs
from cellar_server.pipelines.engine.retry import task_retry
from cellar_server.pipelines.models import RUN_TERMINAL, TASK_STATES, TASK_TERMINAL, Pipeline, PipelineRun, Task
from cellar_server.teams.pages import page_actor, run_service, team_page
from cellar_server.teams.selectors import TeamAccess

READ, RUN = "pipelines:read", "pipelines:run"
RUNS_PAGE = 25
TASKS_PAGE = 50
POLL_SECONDS = 2
LOG_TAIL_LINES = 200
LOG_MAX_BYTES = 512 * 1024
STATE_FILTERS = [s for s, _ in TASK_STATES]


def _pipeline_or_404(name: str) -> Pipeline:
    pipeline = selectors.pipeline_for_name(name=name)
    if pipeline is None:
        raise Http404("No such pipeline.")
    return pipeline


def _run_or_404(pipeline: Pipeline, number: int) -> PipelineRun:
    run = selectors.run_for_number(pipeline=pipeline, number=number)
    if run is None:
        raise Http404("No such run.")
    return run


def _run_url(access: TeamAccess, pipeline: Pipeline, run: PipelineRun) -> str:
    return reverse(
        "pipelines:run",
        kwargs={"team_slug": access.team.slug, "pipeline_name": pipeline.name, "run_number": run.number},
    )


def duration(run_or_task: Any) -> float | None:
    start, end = run_or_task.started_at, run_or_task.ended_at
    if start is None:
        return None
    from django.utils import timezone

    return max(((end or timezone.now()) - start).total_seconds(), 0.0)


def _spec(run: PipelineRun) -> dict[str, Any]:
    from cellar_server.pipelines.models import PipelineVersion

    return PipelineVersion.objects.values_list("spec", flat=True).get(pk=run.version_id)


def coloured_svg(spec: dict[str, Any], steps: list[dict[str, Any]], link_prefix: str) -> SafeString:
    """dag.py's SVG with each step's live state as a `data-state` attribute (styled in CSS)."""
    svg = str(dag.render_svg(spec, link_prefix=link_prefix))
    for step in steps:
        marker = f'data-step="{escape(step["name"])}">'
        svg = svg.replace(marker, f'data-step="{escape(step["name"])}" data-state="{step["state"]}">', 1)
    return mark_safe(svg)  # dag.py escaped every user string; the states are our own words


def _live_context(access: TeamAccess, pipeline: Pipeline, run: PipelineRun) -> dict[str, Any]:
    spec = _spec(run)
    steps = selectors.run_steps(run=run, spec_steps=spec.get("steps", []))
    return {
        "access": access,
        "pipeline": pipeline,
        "run": run,
        "spec": spec,
        "steps": steps,
        "svg": coloured_svg(spec, steps, "?step="),
        "progress": selectors.foreach_progress(spec=spec, steps=steps),
        "live": run.state not in RUN_TERMINAL,
        "poll": POLL_SECONDS,
        "duration": duration(run),
        "percent": round(100 * run.tasks_done / run.tasks_total) if run.tasks_total else 0,
        "can_run": RUN in access.scopes,
    }


def _tasks_context(request: HttpRequest, access: TeamAccess, pipeline: Pipeline, run: PipelineRun) -> dict[str, Any]:
    state = request.GET.get("state") or ""
    state = state if state in STATE_FILTERS else ""
    step = (request.GET.get("step") or "")[:64]
    page = Paginator(selectors.task_rows(run=run, state=state or None, step=step or None), TASKS_PAGE).get_page(
        request.GET.get("page")
    )
    for task in page.object_list:
        task.duration = duration(task)
    return {
        "access": access,
        "pipeline": pipeline,
        "run": run,
        "page": page,
        "state": state,
        "step": step,
        "states": STATE_FILTERS,
        "live": run.state not in RUN_TERMINAL,
        "poll": POLL_SECONDS,
    }


# --- pages ---------------------------------------------------------------------------------------------------


@team_page(READ)
def run_list(request: HttpRequest, access: TeamAccess, pipeline_name: str) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    page = Paginator(selectors.run_list(pipeline=pipeline), RUNS_PAGE).get_page(request.GET.get("page"))
    for run in page.object_list:
        run.duration = duration(run)
    context = {
        "access": access,
        "pipeline": pipeline,
        "page": page,
        "server_url": request.build_absolute_uri("/").rstrip("/"),
        "can_run": RUN in access.scopes,
    }
    return render(request, "pipelines/runs.html", context)


@team_page(READ)
def run_detail(request: HttpRequest, access: TeamAccess, pipeline_name: str, run_number: int) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    run = _run_or_404(pipeline, run_number)
    context = {
        **_live_context(access, pipeline, run),
        **_tasks_context(request, access, pipeline, run),
        "metrics": selectors.run_metrics(run=run, team=access.team),
        "parameters": sorted(run.parameters.items()),
    }
    spec = context["spec"]
    context["environment"] = {
        "python": spec.get("python", ""),
        "packages": len(spec.get("environment") or {}),
        "imported": sorted(set((spec.get("modules") or {}).values())),
    }
    return render(request, "pipelines/run.html", context)


@team_page(READ)
def run_live(request: HttpRequest, access: TeamAccess, pipeline_name: str, run_number: int) -> HttpResponse:
    """The polled fragment: state, progress, the coloured DAG, fan-out bars, the first error."""
    pipeline = _pipeline_or_404(pipeline_name)
    run = _run_or_404(pipeline, run_number)
    context = _live_context(access, pipeline, run)
    response = render(request, "pipelines/_run_live.html", context)
    if not context["live"]:  # the last poll: the metrics the steps logged replace the card drawn at page load
        metrics = selectors.run_metrics(run=run, team=access.team)
        card = {**context, "metrics": metrics, "oob": True}
        response.content += render_to_string("pipelines/_run_metrics.html", card, request=request).encode()
    return response


@team_page(READ)
def run_tasks(request: HttpRequest, access: TeamAccess, pipeline_name: str, run_number: int) -> HttpResponse:
    """The polled task table (filtered, paginated)."""
    pipeline = _pipeline_or_404(pipeline_name)
    run = _run_or_404(pipeline, run_number)
    return render(request, "pipelines/_run_tasks.html", _tasks_context(request, access, pipeline, run))


def _task_or_404(run: PipelineRun, task_id: int) -> Task:
    task = selectors.task_for_id(run=run, task_id=task_id)
    if task is None:
        raise Http404("No such task.")
    return task


def read_log(task: Task, stream: str, *, team_slug: str) -> str | None:
    """The last LOG_TAIL_LINES lines of a stored log (text, JSON-serialized by the worker); None if absent.
    Only the `json` serializer is read: the web process never unpickles what a user produced."""
    ref = (task.logs or {}).get(stream)
    if not isinstance(ref, dict) or ref.get("serializer") != "json" or not ref.get("sha256"):
        return None
    if ref.get("inline") is not None:
        data = str(ref["inline"]).encode("utf-8")
    else:
        from cellar_server.tracking.services.artifacts import artifact_store

        try:
            with artifact_store().open_blob(team_slug, ref["sha256"]) as handle:
                data = handle.read(LOG_MAX_BYTES + 1)
        except Exception as exc:  # a store that lost the blob or cannot be reached: say so, do not fail the page
            return f"(could not read this log from the artifact store: {type(exc).__name__})"
    if len(data) > LOG_MAX_BYTES:
        return f"(the log is over {LOG_MAX_BYTES // 1024} KiB; fetch it from the API)"
    try:
        text = json.loads(data.decode("utf-8"))
    except ValueError:
        return "(this log is not text)"
    lines = str(text).splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _logs(task: Task, *, team_slug: str) -> dict[str, str | None]:
    """The stored logs once the attempt ended; while it runs, the tail its heartbeats brought."""
    if not task.logs and task.live_logs:
        return {stream: _last_lines(task.live_logs.get(stream)) for stream in ("stdout", "stderr")}
    return {stream: read_log(task, stream, team_slug=team_slug) for stream in ("stdout", "stderr")}


def _last_lines(text: Any) -> str | None:
    return "\n".join(str(text).splitlines()[-LOG_TAIL_LINES:]) if text else None


def _task_context(access: TeamAccess, pipeline: Pipeline, run: PipelineRun, task: Task) -> dict[str, Any]:
    spec = _spec(run)
    step = next((s for s in spec.get("steps", []) if s["name"] == task.step), {})
    index = f" --index {task.index}" if task.index >= 0 else ""
    index_arg = f", index={task.index}" if task.index >= 0 else ""
    attempts = selectors.task_attempts(task=task)
    for attempt in attempts:
        attempt.duration = duration(attempt)
    return {
        "access": access,
        "pipeline": pipeline,
        "run": run,
        "task": task,
        "step": step,
        "attempts": attempts,
        "lineage": selectors.task_lineage(run=run, task=task, spec=spec),
        "logs": _logs(task, team_slug=access.team.slug),
        "logs_are_live": not task.logs and bool(task.live_logs),
        "live": task.state not in TASK_TERMINAL and run.state not in RUN_TERMINAL,
        "poll": POLL_SECONDS,
        "duration": duration(task),
        "error_type": (task.error or {}).get("exc_type") or (task.error or {}).get("type") or "Error",
        "can_retry": RUN in access.scopes
        and task.state == "failed"
        and run.state == "failed"
        and not run.cancel_requested,
        "pull_command": f"cellar pull {pipeline.name}/{run.number} --step {task.step}{index}",
        "load_snippet": f'import cellar\ninputs, outputs = cellar.load_task("{pipeline.name}/{run.number}", '
        f'"{task.step}"{index_arg})',
    }


@team_page(READ)
def task_detail(
    request: HttpRequest, access: TeamAccess, pipeline_name: str, run_number: int, task_id: int
) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    run = _run_or_404(pipeline, run_number)
    task = _task_or_404(run, task_id)
    template = "pipelines/_task_live.html" if request.GET.get("fragment") else "pipelines/task.html"
    return render(request, template, _task_context(access, pipeline, run, task))


# --- actions (POST, then back to the page) -----------------------------------------------------------------


@team_page(RUN)
@require_POST
def run_cancel(request: HttpRequest, access: TeamAccess, pipeline_name: str, run_number: int) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    run = _run_or_404(pipeline, run_number)
    run_service(
        request,
        lambda: engine_runs.run_cancel(run=run, actor=page_actor(request)),
        success=f"Run #{run.number} is being cancelled: queued tasks stop now, running ones at their next heartbeat.",
    )
    return redirect(_run_url(access, pipeline, run))


@team_page(RUN)
@require_POST
def run_resume(request: HttpRequest, access: TeamAccess, pipeline_name: str, run_number: int) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    run = _run_or_404(pipeline, run_number)
    made: dict[str, PipelineRun] = {}

    def act() -> None:
        made["run"] = engine_runs.run_resume(run=run, actor=page_actor(request))

    if run_service(request, act):
        from django.contrib import messages

        messages.success(request, f"Run #{made['run'].number} resumes run #{run.number}: it reuses what finished.")
        return redirect(_run_url(access, pipeline, made["run"]))
    return redirect(_run_url(access, pipeline, run))


@team_page(RUN)
@require_POST
def task_retry_view(
    request: HttpRequest, access: TeamAccess, pipeline_name: str, run_number: int, task_id: int
) -> HttpResponse:
    pipeline = _pipeline_or_404(pipeline_name)
    run = _run_or_404(pipeline, run_number)
    task = _task_or_404(run, task_id)
    label = task.step if task.index < 0 else f"{task.step}[{task.index}]"
    run_service(
        request,
        lambda: task_retry(run=run, task_id=task.pk, actor=page_actor(request)),
        success=f"Task {label} is queued again; run #{run.number} goes on from there.",
    )
    return redirect(_run_url(access, pipeline, run))
