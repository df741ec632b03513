"""Teams own everything: members with roles, invitations, API tokens, the audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from cellar_server.core.scoping import TeamScoped
from cellar_server.teams.roles import Role

ROLE_CHOICES = [(r.value, r.value.title()) for r in Role]


class Team(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now)
    # Quotas: visible to the team, edited by platform admins, enforced by the engine.
    max_concurrent_cpu_tasks = models.PositiveIntegerField(default=64)
    max_concurrent_gpu_tasks = models.PositiveIntegerField(default=4)
    gpu_hours_per_month = models.DecimalField(max_digits=10, decimal_places=2, default=100)

    def __str__(self) -> str:
        return self.slug


class Membership(TeamScoped):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=ROLE_CHOICES)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user")]
        indexes = [models.Index(fields=["user"])]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.team_id}:{self.role}"


class Invitation(TeamScoped):
    """An invitation by link: whoever signs in and opens it joins with `role`."""

    email = models.EmailField(blank=True)
    role = models.CharField(max_length=16, choices=ROLE_CHOICES)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class ApiToken(TeamScoped):
    """A bearer token for scripts and the SDK: stored hashed, shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        indexes = [models.Index(fields=["team", "user"])]

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class AuditEvent(TeamScoped):
    """Who did what, when: written by services for every state change."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    verb = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta(TeamScoped.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["team", "verb"]),
        ]
