"""REST API for pipeline runs: /api/v1/teams/<team>/pipelines/<name>/runs/…

    GET  runs/                     the pipeline's runs, newest first (?state=)
    POST runs/                     {"version"?, "parameters"?, "use_cache"?} -> 201, the run
    GET  runs/<number>/            the run: state, progress {done, failed, total}, error, steps
    POST runs/<number>/cancel/     stop it (running tasks are told by their heartbeat)
    POST runs/<number>/resume/     -> 201, a new run reusing what the failed/cancelled one finished
    GET  runs/<number>/tasks/      its tasks, paginated (?step=&state=&kind=&index=)
    GET  runs/<number>/tasks/<id>/                 a task: attempts, lineage, its step's code, parameters
    GET  runs/<number>/tasks/<id>/blobs/<sha256>/  the bytes of a value the task references
    POST runs/<number>/tasks/<id>/retry/           run a failed task again inside its run

A run's `id` is its number within the pipeline (what `cellar promote --run --wait` follows).
Starting, cancelling, resuming and retrying need `pipelines:run` (editors and up); reading, `pipelines:read`.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponse
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
from cellar_server.pipelines.engine.retry import task_retry
from cellar_server.pipelines.models import RUN_STATES, TASK_STATES, Pipeline, PipelineRun, PipelineVersion, Task
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
    return selectors.run_steps(run=run, spec_steps=graph_for(run.version_id).spec.steps)


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
        index = request.query_params.get("index")
        if index not in (None, ""):
            try:
                tasks = tasks.filter(index=int(index))
            except ValueError:
                raise ServiceError("invalid_index", f"'{index[:20]}' is not an element index (0, 1, 2…).") from None
        page = self.paginate_queryset(tasks)
        return self.get_paginated_response(TaskSerializer([task_payload(t) for t in page], many=True).data)


# --- one task: its attempts and lineage, the blobs it references, retry (issue 6) -------------------------

TASK_ID = OpenApiParameter("task_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The task's id.")
SHA = OpenApiParameter("sha256", OpenApiTypes.STR, OpenApiParameter.PATH, description="A blob the task references.")


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    state = serializers.CharField(help_text="dispatched, running, succeeded, failed, lost, timed_out or cancelled.")
    worker = serializers.CharField()
    error = serializers.DictField(allow_null=True)
    dispatched_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


class TaskDetailSerializer(TaskSerializer):
    attempts = AttemptSerializer(many=True)
    lineage = serializers.DictField(
        help_text="inputs: [{name, refs, size, step, index, task}] (the producing task); "
        "outputs: [{name, ref, size, readers: [{step, index, task}]}]."
    )
    source = serializers.DictField(help_text="The step's code and prelude in this run's version.")
    parameters = serializers.DictField(help_text="The run's parameters.")
    version = serializers.DictField()


def task_detail_payload(run: PipelineRun, task: Task) -> dict[str, Any]:
    spec = _version_spec(run)
    step = next((s for s in spec.get("steps", []) if s["name"] == task.step), {})
    source = (spec.get("source") or {}).get(task.step) or {}
    return {
        **task_payload(task),
        "attempts": [
            {
                "number": a.number,
                "state": a.state,
                "worker": a.worker,
                "error": a.error,
                "dispatched_at": a.dispatched_at,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
            }
            for a in selectors.task_attempts(task=task)
        ],
        "lineage": selectors.task_lineage(run=run, task=task, spec=spec),
        "source": {
            "code": step.get("code", ""),
            "prelude": step.get("prelude", ""),
            "cells": source.get("cells") if isinstance(source, dict) else None,
            "foreach": step.get("foreach"),
        },
        "parameters": run.parameters,
        "version": {"id": run.version.hash, "number": run.version.number},
    }


def _version_spec(run: PipelineRun) -> dict[str, Any]:
    return PipelineVersion.objects.values_list("spec", flat=True).get(pk=run.version_id)


class PipelineTaskApi(PipelineRunApi):
    """One task of a run: GET its detail, GET a blob it references, POST retry."""

    def url_task(self, run: PipelineRun) -> Task:
        task = selectors.task_for_id(run=run, task_id=self.kwargs["task_id"])
        if task is None:
            raise exceptions.NotFound()
        return task

    @extend_schema(parameters=[PIPELINE, NUMBER, TASK_ID], responses={200: TaskDetailSerializer, 404: ERROR})
    def retrieve(self, request: Request, team_slug: str, pipeline_name: str, run_number: int, task_id: int) -> Response:
        pipeline = self.url_pipeline()
        run = self.url_run(pipeline)
        return Response(TaskDetailSerializer(task_detail_payload(run, self.url_task(run))).data)

    @extend_schema(
        parameters=[PIPELINE, NUMBER, TASK_ID, SHA],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: ERROR},
        description="The bytes of a value the task read or wrote (or its logs), as the store keeps them; "
        "the X-Cellar-Serializer header names how to load them. Only blobs the task references.",
    )
    def blob(
        self, request: Request, team_slug: str, pipeline_name: str, run_number: int, task_id: int, sha256: str
    ) -> HttpResponse:
        pipeline = self.url_pipeline()
        run = self.url_run(pipeline)
        task = self.url_task(run)
        ref = selectors.task_refs(task).get(sha256)
        if ref is None:
            raise exceptions.NotFound()
        serializer = str(ref.get("serializer", ""))
        if ref.get("inline") is not None:  # a small value travels inside its reference
            response = HttpResponse(str(ref["inline"]).encode("utf-8"), content_type="application/octet-stream")
            response["X-Cellar-Serializer"] = serializer
            return response
        from cellar.artifacts.base import ArtifactStoreError
        from cellar_server.tracking.services.artifacts import artifact_store

        try:
            handle = artifact_store().open_blob(self.team.slug, sha256)
        except (ArtifactStoreError, OSError, KeyError) as exc:
            raise ServiceError(
                "blob_missing", f"The store no longer holds this value ({type(exc).__name__}).", status_code=404
            ) from None
        response = FileResponse(handle, content_type="application/octet-stream")
        response["X-Cellar-Serializer"] = serializer
        return response

    @extend_schema(
        parameters=[PIPELINE, NUMBER, TASK_ID],
        request=None,
        responses={200: RunDetailSerializer, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Run a failed task again inside its run; the run reopens when no other task is failed.",
    )
    def retry(self, request: Request, team_slug: str, pipeline_name: str, run_number: int, task_id: int) -> Response:
        pipeline = self.url_pipeline()
        run = self.url_run(pipeline)
        task_retry(run=run, task_id=int(task_id), actor=actor_from_request(request))
        return self._detail(self.url_run(pipeline), pipeline)
