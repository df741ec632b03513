"""REST API for pipeline runs: /api/v1/teams/<team>/pipelines/<name>/runs/…

    GET  runs/                     the pipeline's runs, newest first (?state=)
    POST runs/                     {"version"?, "parameters"?, "use_cache"?} -> 201, the run
    GET  runs/<number>/            the run: state, progress {done, failed, total}, error, steps
    POST runs/<number>/cancel/     stop it (running tasks are told by their heartbeat)
    POST runs/<number>/resume/     -> 201, a new run reusing what the failed/cancelled one finished
    GET  runs/<number>/tasks/      its tasks, paginated (?step=&state=&kind=)

A run's `id` is its number within the pipeline (what `cellar promote --run --wait` follows).
Starting, cancelling and resuming need `pipelines:run` (editors and up); reading, `pipelines:read`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines import selectors
from cellar_server.pipelines.apis import PIPELINE, PipelineApiBase
from cellar_server.pipelines.engine import runs as engine_runs
from cellar_server.pipelines.engine.advance import graph_for
from cellar_server.pipelines.models import RUN_STATES, TASK_STATES, Pipeline, PipelineRun, Task
from cellar_server.teams.actors import actor_from_request

READ, RUN = "pipelines:read", "pipelines:run"
NUMBER = OpenApiParameter("run_number", OpenApiTypes.INT, OpenApiParameter.PATH, description="The run's number.")
ERROR = OpenApiResponse(description='{"error": {"code", "message"}}')
API_TRIGGERS = ("api", "cli", "manual")


class RunCreateInput(serializers.Serializer):
    version = serializers.CharField(
        max_length=80, required=False, allow_blank=True, help_text="Number (3, v3) or id; default: production."
    )
    parameters = serializers.DictField(required=False, default=dict, help_text="Overrides of the defaults.")
    use_cache = serializers.BooleanField(required=False, default=True, help_text="false: run every step.")
    trigger = serializers.ChoiceField(choices=API_TRIGGERS, required=False, default="api")


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    total = serializers.IntegerField()


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The run's number within its pipeline.")
    number = serializers.IntegerField()
    pipeline = serializers.CharField()
    version = serializers.DictField()
    state = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled.")
    trigger = serializers.CharField()
    parameters = serializers.DictField()
    use_cache = serializers.BooleanField()
    cancel_requested = serializers.BooleanField()
    progress = ProgressSerializer()
    error = serializers.DictField(allow_null=True)
    tracking_run = serializers.CharField()
    resumed_from = serializers.IntegerField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


class StepProgressSerializer(serializers.Serializer):
    name = serializers.CharField()
    expand = serializers.CharField(allow_null=True, help_text="A foreach step: its expansion task's state.")
    tasks = serializers.DictField(child=serializers.IntegerField(), help_text="state -> count")


class RunDetailSerializer(RunSerializer):
    steps = StepProgressSerializer(many=True)


class TaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    step = serializers.CharField()
    index = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField()
    state = serializers.CharField(
        help_text="queued, dispatched, running, succeeded, failed, cancelled, cached or upstream_failed."
    )
    attempt = serializers.IntegerField()
    pool = serializers.CharField()
    inputs = serializers.DictField()
    item = serializers.DictField(allow_null=True)
    outputs = serializers.DictField()
    items = serializers.IntegerField(allow_null=True, help_text="An expansion: how many elements.")
    logs = serializers.DictField()
    error = serializers.DictField(allow_null=True)
    cached = serializers.BooleanField()
    cloned_from = serializers.IntegerField(allow_null=True)
    worker = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


def run_payload(run: PipelineRun, pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": run.number,
        "number": run.number,
        "pipeline": pipeline.name,
        "version": {"id": run.version.hash, "number": run.version.number},
        "state": run.state,
        "trigger": run.trigger,
        "parameters": run.parameters,
        "use_cache": run.use_cache,
        "cancel_requested": run.cancel_requested,
        "progress": {"done": run.tasks_done, "failed": run.tasks_failed, "total": run.tasks_total},
        "error": run.error,
        "tracking_run": run.tracking_run,
        "resumed_from": run.resumed_from.number if run.resumed_from_id else None,
        "created_by": run.created_by.username if run.created_by_id else None,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
    }


def run_steps(run: PipelineRun) -> list[dict[str, Any]]:
    """Per step of the version, in order: how many of its tasks are in each state."""
    counts: dict[str, dict[str, int]] = {}
    expand: dict[str, str] = {}
    rows = Task.objects.filter(run=run).order_by().values("step", "kind", "state").annotate(n=Count("id"))
    for row in rows:
        if row["kind"] == "expand":
            expand[row["step"]] = row["state"]
        else:
            counts.setdefault(row["step"], {})[row["state"]] = row["n"]
    graph = graph_for(run.version_id)
    return [
        {
            "name": step.name,
            "expand": expand.get(step.name) if step.foreach else None,
            "tasks": counts.get(step.name, {}),
        }
        for step in graph.spec.steps
    ]


def task_payload(task: Task) -> dict[str, Any]:
    return {
        "id": task.pk,
        "step": task.step,
        "index": task.index if task.index >= 0 else None,
        "kind": task.kind,
        "state": task.state,
        "attempt": task.attempt,
        "pool": task.pool,
        "inputs": task.inputs,
        "item": task.item,
        "outputs": task.outputs,
        "items": len(task.items) if task.items is not None else None,
        "logs": task.logs,
        "error": task.error,
        "cached": task.state == "cached",
        "cloned_from": task.cloned_from_id,
        "worker": task.worker,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "ended_at": task.ended_at,
    }


def _choice(request: Request, name: str, choices) -> str | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    allowed = [c[0] for c in choices]
    if value not in allowed:
        raise ServiceError(f"invalid_{name}", f"'{value[:40]}' is not a {name}; use one of {', '.join(allowed)}.")
    return value


class PipelineRunApi(PipelineApiBase):
    model = PipelineRun
    scope_map = {"GET": READ, "POST": RUN}
    serializer_class = RunSerializer

    def url_run(self, pipeline: Pipeline) -> PipelineRun:
        run = (
            PipelineRun.objects.filter(pipeline=pipeline, number=self.kwargs["run_number"])
            .select_related("version", "created_by", "resumed_from")
            .defer("version__spec", "version__warnings")
            .first()
        )
        if run is None:
            raise exceptions.NotFound()
        return run

    def _detail(self, run: PipelineRun, pipeline: Pipeline, code: int = status.HTTP_200_OK) -> Response:
        body = {**run_payload(run, pipeline), "steps": run_steps(run)}
        return Response(RunDetailSerializer(body).data, status=code)

    @extend_schema(parameters=[PIPELINE], responses={200: RunSerializer(many=True), 400: ERROR, 404: ERROR})
    def list(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        runs = (
            PipelineRun.objects.filter(pipeline=pipeline)
            .select_related("version", "created_by", "resumed_from")
            .defer("version__spec", "version__warnings")
            .order_by("-number")
        )
        state = _choice(request, "state", RUN_STATES)
        if state:
            runs = runs.filter(state=state)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(RunSerializer([run_payload(r, pipeline) for r in page], many=True).data)

    @extend_schema(
        parameters=[PIPELINE],
        request=RunCreateInput,
        responses={201: RunDetailSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        description="Run a version (default: the production version) with parameters.",
    )
    def create(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        serializer = RunCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ref = (data.get("version") or "").strip()
        if ref:
            version = selectors.version_for_ref(pipeline=pipeline, ref=ref)
            if version is None:
                raise ServiceError(
                    "unknown_version", f"Pipeline '{pipeline.name}' has no version '{ref[:80]}'; see its versions."
                )
        elif pipeline.production_id:
            version = selectors.version_for_ref(pipeline=pipeline, ref=str(pipeline.production.number))
        else:
            raise ServiceError(
                "no_production_version",
                f"Pipeline '{pipeline.name}' has no production version; name the version to run, or promote one.",
            )
        run = engine_runs.run_create(
            team=self.team,
            pipeline=pipeline,
            version=version,
            parameters=data["parameters"],
            actor=actor_from_request(request),
            trigger=data["trigger"],
            use_cache=data["use_cache"],
        )
        return self._detail(run, pipeline, status.HTTP_201_CREATED)

    @extend_schema(parameters=[PIPELINE, NUMBER], responses={200: RunDetailSerializer, 404: ERROR})
    def retrieve(self, request: Request, team_slug: str, pipeline_name: str, run_number: int) -> Response:
        pipeline = self.url_pipeline()
        return self._detail(self.url_run(pipeline), pipeline)

    @extend_schema(
        parameters=[PIPELINE, NUMBER],
        request=None,
        responses={200: RunDetailSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Cancel the run: queued tasks at once, running ones at their next heartbeat.",
    )
    def cancel(self, request: Request, team_slug: str, pipeline_name: str, run_number: int) -> Response:
        pipeline = self.url_pipeline()
        engine_runs.run_cancel(run=self.url_run(pipeline), actor=actor_from_request(request))
        return self._detail(self.url_run(pipeline), pipeline)

    @extend_schema(
        parameters=[PIPELINE, NUMBER],
        request=None,
        responses={201: RunDetailSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
        description="A new run that reuses what this failed or cancelled run finished and runs the rest.",
    )
    def resume(self, request: Request, team_slug: str, pipeline_name: str, run_number: int) -> Response:
        pipeline = self.url_pipeline()
        run = engine_runs.run_resume(run=self.url_run(pipeline), actor=actor_from_request(request))
        return self._detail(run, pipeline, status.HTTP_201_CREATED)

    @extend_schema(parameters=[PIPELINE, NUMBER], responses={200: TaskSerializer(many=True), 400: ERROR, 404: ERROR})
    def tasks(self, request: Request, team_slug: str, pipeline_name: str, run_number: int) -> Response:
        pipeline = self.url_pipeline()
        run = self.url_run(pipeline)
        tasks = Task.objects.filter(run=run).order_by("id")
        step = request.query_params.get("step")
        if step:
            tasks = tasks.filter(step=step[:64])
        state = _choice(request, "state", TASK_STATES)
        if state:
            tasks = tasks.filter(state=state)
        kind = _choice(request, "kind", [("step", "step"), ("expand", "expand")])
        if kind:
            tasks = tasks.filter(kind=kind)
        page = self.paginate_queryset(tasks)
        return self.get_paginated_response(TaskSerializer([task_payload(t) for t in page], many=True).data)
