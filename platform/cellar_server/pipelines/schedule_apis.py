"""REST API for schedules: /api/v1/teams/<team>/pipelines/<name>/schedules/…

A schedule runs the pipeline's `production` version on a cron expression (UTC). Creating,
changing and deleting one needs `pipelines:promote` (team admins): a schedule decides what runs
in production and when, as moving the alias does. Anyone who can read the pipeline can read them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from cellar_server.pipelines.apis import ERROR, PIPELINE, PROMOTE, READ, PipelineApiBase
from cellar_server.pipelines.engine import schedules
from cellar_server.pipelines.models import Pipeline, Schedule
from cellar_server.teams.actors import actor_from_request

SCHEDULE = OpenApiParameter("schedule_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The schedule.")


class ScheduleInput(serializers.Serializer):
    cron = serializers.CharField(
        max_length=100, help_text="Five fields, minute hour day-of-month month day-of-week, in UTC: '0 3 * * *'."
    )
    parameters = serializers.JSONField(required=False, default=dict, help_text="Overrides of the defaults.")
    enabled = serializers.BooleanField(required=False, default=True)


class ScheduleUpdateInput(serializers.Serializer):
    cron = serializers.CharField(max_length=100, required=False)
    parameters = serializers.JSONField(required=False)
    enabled = serializers.BooleanField(required=False)


class ScheduleVersionSerializer(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.IntegerField()


class ScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    pipeline = serializers.CharField()
    cron = serializers.CharField()
    timezone = serializers.CharField(help_text="Always UTC.")
    parameters = serializers.JSONField()
    enabled = serializers.BooleanField()
    next_run_at = serializers.DateTimeField(allow_null=True)
    last_run_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    production = ScheduleVersionSerializer(
        allow_null=True, help_text="What the next firing would run; null: it will be skipped."
    )


def schedule_payload(schedule: Schedule, pipeline: Pipeline) -> dict[str, Any]:
    production = pipeline.production
    return {
        "id": schedule.pk,
        "pipeline": pipeline.name,
        "cron": schedule.cron,
        "timezone": "UTC",
        "parameters": schedule.parameters,
        "enabled": schedule.enabled,
        "next_run_at": schedule.next_run_at,
        "last_run_at": schedule.last_run_at,
        "created_by": schedule.created_by.get_username() if schedule.created_by_id else None,
        "created_at": schedule.created_at,
        "production": {"id": production.hash, "number": production.number} if production is not None else None,
    }


def _valid(serializer_class, data) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PipelineScheduleApi(PipelineApiBase):
    model = Schedule
    scope_map = {"GET": READ, "POST": PROMOTE, "PATCH": PROMOTE, "DELETE": PROMOTE}
    serializer_class = ScheduleSerializer

    def url_schedule(self, pipeline: Pipeline) -> Schedule:
        schedule = schedules.schedule_for_id(pipeline=pipeline, schedule_id=int(self.kwargs["schedule_id"]))
        if schedule is None:
            raise exceptions.NotFound()
        return schedule

    def _body(self, schedule: Schedule, pipeline: Pipeline, code: int = status.HTTP_200_OK) -> Response:
        return Response(ScheduleSerializer(schedule_payload(schedule, pipeline)).data, status=code)

    @extend_schema(parameters=[PIPELINE], responses={200: ScheduleSerializer(many=True), 404: ERROR})
    def list(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        page = self.paginate_queryset(schedules.schedule_list(pipeline=pipeline))
        rows = [schedule_payload(schedule, pipeline) for schedule in page]
        return self.get_paginated_response(ScheduleSerializer(rows, many=True).data)

    @extend_schema(
        parameters=[PIPELINE],
        request=ScheduleInput,
        responses={201: ScheduleSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
        description="Run the pipeline's production version on a cron expression (UTC).",
    )
    def create(self, request: Request, team_slug: str, pipeline_name: str) -> Response:
        pipeline = self.url_pipeline()
        data = _valid(ScheduleInput, request.data)
        schedule = schedules.schedule_create(
            team=self.team,
            pipeline=pipeline,
            cron=data["cron"],
            parameters=data.get("parameters"),
            enabled=data.get("enabled", True),
            actor=actor_from_request(request),
        )
        return self._body(schedule, pipeline, status.HTTP_201_CREATED)

    @extend_schema(parameters=[PIPELINE, SCHEDULE], responses={200: ScheduleSerializer, 404: ERROR})
    def retrieve(self, request: Request, team_slug: str, pipeline_name: str, schedule_id: int) -> Response:
        pipeline = self.url_pipeline()
        return self._body(self.url_schedule(pipeline), pipeline)

    @extend_schema(
        parameters=[PIPELINE, SCHEDULE],
        request=ScheduleUpdateInput,
        responses={200: ScheduleSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        description="Change the cron, the parameters or `enabled`; the next run is recomputed from now.",
    )
    def partial_update(self, request: Request, team_slug: str, pipeline_name: str, schedule_id: int) -> Response:
        pipeline = self.url_pipeline()
        schedule = self.url_schedule(pipeline)
        data = _valid(ScheduleUpdateInput, request.data)
        schedule = schedules.schedule_update(
            schedule=schedule,
            actor=actor_from_request(request),
            cron=data.get("cron"),
            parameters=data.get("parameters"),
            enabled=data.get("enabled"),
        )
        return self._body(schedule, pipeline)

    @extend_schema(parameters=[PIPELINE, SCHEDULE], responses={204: None, 403: ERROR, 404: ERROR})
    def destroy(self, request: Request, team_slug: str, pipeline_name: str, schedule_id: int) -> Response:
        pipeline = self.url_pipeline()
        schedules.schedule_delete(schedule=self.url_schedule(pipeline), actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
