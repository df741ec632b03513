"""Deployments (the control side of serving): routes to model versions by weight, the keys that
authorize predictions, what serve processes report (version health, per-minute prediction stats,
sampled inputs for drift).

Model versions belong to the registry app; a route names one by id (`version_id`) and the
registry's selector resolves it, so serving never reaches into the registry's tables.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from cellar_server.core.scoping import TeamScoped

DEFAULT_SAMPLE_RATE = 0.1
DRIFT_THRESHOLD = 0.2


class Deployment(TeamScoped):
    name = models.SlugField(max_length=63)
    description = models.TextField(blank=True)
    # Fraction of predicted rows whose inputs are kept for drift (0 = none, 1 = all).
    sample_rate = models.FloatField(default=DEFAULT_SAMPLE_RATE)
    drift_threshold = models.FloatField(default=DRIFT_THRESHOLD)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="deployment_unique_team_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.name}"


class Route(TeamScoped):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="routes")
    version_id = models.CharField(max_length=64)
    weight = models.FloatField()

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["deployment", "version_id"], name="route_unique_version")]
        ordering = ["-weight", "version_id"]


class DeploymentKey(TeamScoped):
    """A bearer key for POST /serve/<team>/<deployment>/predict: stored hashed, shown once."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        ordering = ["-created_at", "-id"]


class VersionHealth(TeamScoped):
    """What a serve process last said about one routed version: loaded, or failed with the error."""

    READY = "ready"
    LOADING = "loading"
    FAILED = "failed"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="health")
    version_id = models.CharField(max_length=64)
    state = models.CharField(max_length=16)
    error = models.TextField(blank=True)
    reported_by = models.CharField(max_length=120, blank=True)
    reported_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["deployment", "version_id"], name="health_unique_version")]


class PredictionMinute(TeamScoped):
    """Requests, rows, errors and a latency histogram for one deployment × version × minute."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="minutes")
    version_id = models.CharField(max_length=64, blank=True)
    minute = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    # Counts per latency bucket (cellar.models.drift.LATENCY_EDGES_MS), merged by addition.
    latency_hist = models.JSONField(default=list)

    class Meta(TeamScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["deployment", "version_id", "minute"], name="minute_unique_bucket")
        ]
        indexes = [models.Index(fields=["deployment", "minute"])]


class PredictionSample(TeamScoped):
    """One sampled input row (features only) that a version predicted on: drift's raw material."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="samples")
    version_id = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)
    inputs = models.JSONField()

    class Meta(TeamScoped.Meta):
        indexes = [models.Index(fields=["deployment", "version_id", "-at"])]
