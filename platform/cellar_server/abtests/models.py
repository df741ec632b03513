"""A/B tests of model versions on a deployment.

A test has arms (model versions; the first is the control), a seed, and phases:
changing weights starts a new phase (units may move between arms, so each phase
is analysed on its own); changing coverage keeps the phase. Exposures record
each unit's first assignment per phase; events are outcomes sent by the
application. `ArmAggregate` rows hold per-arm sufficient statistics per metric
and exposure-time bucket, computed in SQL (`aggregates.py`): the analysis reads
only those.

The deployment is referenced by id (serving owns it) so this app's schema does
not depend on serving's migrations.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from cellar_server.core.scoping import TeamScoped


class ABTest(TeamScoped):
    DRAFT, RUNNING, STOPPED, PROMOTED = "draft", "running", "stopped", "promoted"
    STATUSES = [(s, s) for s in (DRAFT, RUNNING, STOPPED, PROMOTED)]

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    deployment_id = models.BigIntegerField(db_index=True)
    deployment_name = models.CharField(max_length=63)
    seed = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=STATUSES, default=DRAFT)
    shadow = models.BooleanField(default=False)
    coverage = models.FloatField(default=1.0)
    phase = models.PositiveIntegerField(default=1)
    alpha = models.FloatField(default=0.05)
    # N*: the sample size (both arms) at which the always-valid interval is tightest.
    sequential_n_star = models.FloatField(default=5000)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    winner_arm = models.CharField(max_length=32, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "status"])]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.name}"


class Arm(TeamScoped):
    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="arms")
    position = models.PositiveSmallIntegerField()  # 0 is the control
    key = models.CharField(max_length=32)
    version_id = models.CharField(max_length=64)
    weight = models.FloatField()

    class Meta(TeamScoped.Meta):
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["test", "position"], name="abtest_arm_unique_position"),
            models.UniqueConstraint(fields=["test", "key"], name="abtest_arm_unique_key"),
        ]

    @property
    def is_control(self) -> bool:
        return self.position == 0


class Phase(TeamScoped):
    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="phases")
    number = models.PositiveIntegerField()
    weights = models.JSONField()  # per arm position
    coverage = models.FloatField()
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["test", "number"], name="abtest_phase_unique_number")]


class Metric(TeamScoped):
    PROPORTION, MEAN, RATIO = "proportion", "mean", "ratio"
    KINDS = [(k, k) for k in (PROPORTION, MEAN, RATIO)]
    PRIMARY, SECONDARY, GUARDRAIL = "primary", "secondary", "guardrail"
    ROLES = [(r, r) for r in (PRIMARY, SECONDARY, GUARDRAIL)]

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=100)  # the event name it counts (numerator for ratios)
    kind = models.CharField(max_length=16, choices=KINDS)
    role = models.CharField(max_length=16, choices=ROLES)
    denominator = models.CharField(max_length=100, blank=True)  # ratio: the event name below the line
    higher_is_better = models.BooleanField(default=True)
    window_hours = models.FloatField(default=72)  # events within W hours after first exposure count
    winsorize_percentile = models.FloatField(null=True, blank=True)  # mean: cap per-unit values
    cuped = models.BooleanField(default=True)  # mean/proportion: pre-exposure events as covariate
    position = models.PositiveSmallIntegerField(default=0)

    class Meta(TeamScoped.Meta):
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["test", "name"], name="abtest_metric_unique_name")]


class Exposure(TeamScoped):
    """A unit's first exposure in one phase (written with ON CONFLICT DO NOTHING)."""

    id = models.BigAutoField(primary_key=True)
    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="+", db_index=False)
    phase = models.PositiveIntegerField()
    unit_id = models.CharField(max_length=200)
    arm = models.PositiveSmallIntegerField()
    first_at = models.DateTimeField()

    class Meta(TeamScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["test", "phase", "unit_id"], name="abtest_exposure_first_per_phase")
        ]


class Event(TeamScoped):
    """An outcome: idempotent by (test, event_id); kept whether or not its unit was exposed."""

    id = models.BigAutoField(primary_key=True)
    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="+", db_index=False)
    event_id = models.CharField(max_length=100)
    unit_id = models.CharField(max_length=200)
    name = models.CharField(max_length=100)
    value = models.FloatField()
    at = models.DateTimeField()

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["test", "event_id"], name="abtest_event_unique_id")]
        indexes = [models.Index(fields=["test", "name", "unit_id"], name="abtest_event_unit")]


class ArmAggregate(TeamScoped):
    """Per-arm sufficient statistics for one metric, phase and exposure-time bucket (additive)."""

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="aggregates")
    phase = models.PositiveIntegerField()
    metric = models.CharField(max_length=100)  # "" = exposure counts only
    arm = models.PositiveSmallIntegerField()
    bucket = models.DateTimeField()
    n = models.BigIntegerField()
    # post y, pre x (CUPED) or numerator m / denominator d (ratio)
    y_sum = models.FloatField(default=0)
    y_sum_sq = models.FloatField(default=0)
    x_sum = models.FloatField(default=0)
    x_sum_sq = models.FloatField(default=0)
    xy_sum = models.FloatField(default=0)

    class Meta(TeamScoped.Meta):
        indexes = [models.Index(fields=["test", "phase", "metric"])]
