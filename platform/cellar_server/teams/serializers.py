"""API shapes for teams: one serializer per resource, inputs separate from outputs."""

from __future__ import annotations

from rest_framework import serializers

from cellar_server.teams.roles import ROLE_SCOPES, Role

ROLE_FIELD_CHOICES = [r.value for r in Role]


class TeamSerializer(serializers.Serializer):
    slug = serializers.SlugField(read_only=True)
    name = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    role = serializers.CharField(read_only=True, allow_null=True)


class TeamCreateInput(serializers.Serializer):
    slug = serializers.CharField(max_length=50)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)


class TeamUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)


class QuotaSerializer(serializers.Serializer):
    max_concurrent_cpu_tasks = serializers.IntegerField(min_value=0, required=False)
    max_concurrent_gpu_tasks = serializers.IntegerField(min_value=0, required=False)
    gpu_hours_per_month = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0, required=False)


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    role = serializers.CharField(read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)


class MemberUpdateInput(serializers.Serializer):
    role = serializers.CharField()


class InvitationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    email = serializers.CharField(read_only=True)
    role = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    invited_by = serializers.CharField(source="invited_by.username", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)


class InvitationCreatedSerializer(InvitationSerializer):
    url = serializers.CharField(read_only=True, help_text="The invitation link; shown once.")


class InvitationCreateInput(serializers.Serializer):
    role = serializers.CharField()
    email = serializers.EmailField(required=False, allow_blank=True)


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True)
    user = serializers.CharField(source="user.username", read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)
    status = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret; shown once, stored only hashed.")


class TokenCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(ROLE_SCOPES[Role.OWNER])), required=False, allow_empty=False
    )
    expires_in_days = serializers.IntegerField(min_value=1, max_value=365, required=False, allow_null=True, default=90)


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    actor = serializers.CharField(source="actor_name", read_only=True)
    token = serializers.CharField(source="token.prefix", read_only=True, allow_null=True, default=None)
    verb = serializers.CharField(read_only=True)
    target_type = serializers.CharField(read_only=True)
    target_id = serializers.CharField(read_only=True)
    target = serializers.CharField(source="target_repr", read_only=True)
    details = serializers.JSONField(read_only=True)


class AuditFilterInput(serializers.Serializer):
    actor = serializers.CharField(required=False, allow_blank=True, default="")
    verb = serializers.CharField(required=False, allow_blank=True, default="")
    since = serializers.DateField(required=False, allow_null=True, default=None)
    until = serializers.DateField(required=False, allow_null=True, default=None)


class InvitationAcceptInput(serializers.Serializer):
    token = serializers.CharField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()
    teams = TeamSerializer(many=True)
    token = TokenSerializer(allow_null=True)
