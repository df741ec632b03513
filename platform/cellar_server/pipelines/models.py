"""Pipelines and their immutable, content-addressed versions; the `production` alias and its history.

A version's `hash` is `PipelineSpec.content_hash()` (ARCHITECTURE.md, "Versions are
content-addressed"): promoting the same content twice finds the same row, enforced by the
unique (team, pipeline, hash) constraint. `number` is a per-pipeline sequence (1, 2, 3…)
for people; the hash is the identity.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from cellar_server.core.scoping import TeamScoped

PROMOTE, ROLLBACK = "promote", "rollback"
MOVE_KINDS = [(PROMOTE, "promote"), (ROLLBACK, "rollback")]


class Pipeline(TeamScoped):
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # The movable `production` alias; its moves are ProductionMove rows.
    production = models.ForeignKey(
        "PipelineVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="pipeline_unique_team_name")]

    def __str__(self) -> str:
        return self.name


class PipelineVersion(TeamScoped):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions", db_index=False)
    hash = models.CharField(max_length=64)
    number = models.PositiveIntegerField()
    # PipelineSpec.to_dict(): the canonical content plus its source map.
    spec = models.JSONField()
    step_count = models.PositiveIntegerField(default=0)
    notebook = models.CharField(max_length=255, blank=True)
    # Compile and environment warnings at creation: [{"code", "message", "cell", "step", "line"}].
    warnings = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["team", "pipeline", "hash"], name="pipeline_version_unique_hash"),
            models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id} v{self.number} {self.hash[:12]}"

    @property
    def short_hash(self) -> str:
        return self.hash[:12]


class ProductionMove(TeamScoped):
    """One move of a pipeline's `production` alias: the alias's history."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="moves", db_index=False)
    from_version = models.ForeignKey(PipelineVersion, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    to_version = models.ForeignKey(PipelineVersion, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=MOVE_KINDS)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        indexes = [models.Index(fields=["pipeline", "-created_at", "-id"], name="production_move_history")]
