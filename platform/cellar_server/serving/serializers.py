"""Shapes of the deployments API for the OpenAPI schema (payloads.py builds the bodies)."""

from __future__ import annotations

from rest_framework import serializers


class RouteInput(serializers.Serializer):
    version_id = serializers.CharField(help_text="A model version id of this team (registry).")
    weight = serializers.FloatField(min_value=0, help_text="Any non-negative number; weights are normalized.")


class RouteSerializer(RouteInput):
    health = serializers.CharField(help_text="ready, loading, failed, or pending (no serve has reported).")
    error = serializers.CharField(help_text="The load error when failed.")


class DeploymentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    sample_rate = serializers.FloatField()
    drift_threshold = serializers.FloatField()
    state = serializers.CharField(help_text="healthy, degraded, failed or pending")
    routes = RouteSerializer(many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DeploymentCreateInput(serializers.Serializer):
    name = serializers.SlugField()
    routes = RouteInput(many=True)
    description = serializers.CharField(required=False)
    sample_rate = serializers.FloatField(required=False, min_value=0, max_value=1)


class DeploymentUpdateInput(serializers.Serializer):
    routes = RouteInput(many=True, required=False)
    description = serializers.CharField(required=False)
    sample_rate = serializers.FloatField(required=False, min_value=0, max_value=1)
    drift_threshold = serializers.FloatField(required=False, min_value=0)


class KeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    key = serializers.CharField(required=False, help_text="The raw key: in the create answer only, once.")


class KeyCreateInput(serializers.Serializer):
    name = serializers.CharField()


class KeyListSerializer(serializers.Serializer):
    results = KeySerializer(many=True)
