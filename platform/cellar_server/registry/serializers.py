"""Shapes of Cellar's registry REST API (one serializer per resource shape)."""

from __future__ import annotations

from rest_framework import serializers

from cellar_server.registry.models import AliasMove, ModelVersion, RegisteredModel


class RegisteredModelSerializer(serializers.ModelSerializer):
    version_count = serializers.IntegerField(read_only=True, default=None)
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = ["name", "description", "tags", "created_at", "updated_at", "version_count", "aliases"]

    def get_aliases(self, obj: RegisteredModel) -> dict[str, int]:
        return self.context.get("aliases", {}).get(obj.pk, {})


class ModelVersionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="pk", read_only=True)
    model = serializers.CharField(source="model.name", read_only=True)
    aliases = serializers.SerializerMethodField()
    run_id = serializers.CharField(source="run_uuid", read_only=True)
    status = serializers.CharField(read_only=True)
    stage = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "version",
            "description",
            "source",
            "flavor",
            "signature",
            "metrics",
            "params",
            "tags",
            "status",
            "stage",
            "run_id",
            "task_id",
            "aliases",
            "created_at",
        ]

    def get_aliases(self, obj: ModelVersion) -> list[str]:
        return self.context.get("aliases", {}).get(obj.pk, [])


class ModelVersionDetailSerializer(ModelVersionSerializer):
    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "files", "profile", "artifact_path"]


class AliasMoveSerializer(serializers.ModelSerializer):
    class Meta:
        model = AliasMove
        fields = ["alias", "from_version", "to_version", "reason", "actor_name", "created_at"]


class AliasSetSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class RegisterSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=256)
    source = serializers.CharField(max_length=1000)
    run_id = serializers.CharField(max_length=32, required=False, allow_blank=True)
    metrics = serializers.DictField(child=serializers.FloatField(), required=False)
    profile = serializers.DictField(required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    alias = serializers.CharField(max_length=255, required=False, allow_blank=True)
    gate = serializers.JSONField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
