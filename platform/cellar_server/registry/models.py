"""The model registry: registered models, their versions, aliases and MLflow's legacy stages.

A version's files live in the team's content-addressed store; the version records
relpath -> sha256 (`files`), never the bytes, so registering copies pointers only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from cellar_server.core.scoping import TeamScoped

READY = "READY"
PENDING = "PENDING_REGISTRATION"
FAILED = "FAILED_REGISTRATION"
STATUSES = [(READY, READY), (PENDING, PENDING), (FAILED, FAILED)]

STAGE_NONE, STAGING, PRODUCTION, ARCHIVED = "None", "Staging", "Production", "Archived"
STAGES = [(s, s) for s in (STAGE_NONE, STAGING, PRODUCTION, ARCHIVED)]


class RegisteredModel(TeamScoped):
    name = models.CharField(max_length=256)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="registry_model_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(TeamScoped):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    source = models.CharField(max_length=1000, blank=True)  # as given: runs:/…, models:/m-…, mlflow-artifacts:/…
    artifact_path = models.CharField(max_length=1000, blank=True)  # the team artifact tree prefix of `files`
    files = models.JSONField(default=dict, blank=True)  # relpath -> sha256
    flavor = models.CharField(max_length=32, blank=True)
    signature = models.JSONField(null=True, blank=True)
    profile = models.JSONField(null=True, blank=True)  # reference profile of the training inputs
    metrics = models.JSONField(default=dict, blank=True)  # snapshot at registration
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=32, choices=STATUSES, default=READY)
    status_message = models.TextField(blank=True)
    stage = models.CharField(max_length=16, choices=STAGES, default=STAGE_NONE)
    # Lineage: the tracking run that produced it and, for a pipeline step, the task.
    run = models.ForeignKey("tracking.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    run_uuid = models.CharField(max_length=32, blank=True)
    task = models.ForeignKey("pipelines.Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="registry_version_unique")]
        ordering = ["model_id", "-version"]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"


class ModelAlias(TeamScoped):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=255)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="registry_alias_unique")]
        ordering = ["alias"]


class AliasMove(TeamScoped):
    """The history of an alias (and of stage transitions): who pointed what where, and why."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="moves")
    alias = models.CharField(max_length=255)  # or "stage:Production" for a stage transition
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField(null=True, blank=True)  # None: deleted
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "-created_at"])]
