"""Experiment tracking: experiments, runs, params, metric history, tags, artifact files.

Times are epoch milliseconds (MLflow's wire format) so the hot logging path never
converts. Metric points are unique on (run, key, step, timestamp, value, is_nan):
a retried write inserts nothing twice, which makes every log call safe to repeat.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Func, TextField

from cellar_server.core.scoping import TeamScoped

ACTIVE, DELETED = "active", "deleted"
LIFECYCLE_CHOICES = [(ACTIVE, "active"), (DELETED, "deleted")]
RUN_STATUSES = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
SOURCE_TYPES = ["notebook", "pipeline", "script", "unknown"]


VALUE_PREFIX = 100


class ValuePrefix(Func):
    """The first VALUE_PREFIX characters of a param or tag value, as indexed for search.

    A value may be 8,000 characters, more than a PostgreSQL b-tree entry holds, so the index
    keeps a prefix. The length is written into the SQL rather than bound as a parameter: a
    query uses an expression index only if its expression is the index's, character for character.
    """

    function = "SUBSTR"
    template = f"%(function)s(%(expressions)s, 1, {VALUE_PREFIX})"
    output_field = TextField()


class Experiment(TeamScoped):
    # MLflow ids are strings; each team numbers its own experiments, with "0" the default.
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=500)
    artifact_location = models.CharField(max_length=1000, blank=True)
    lifecycle_stage = models.CharField(max_length=16, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    creation_time = models.BigIntegerField()
    last_update_time = models.BigIntegerField()

    class Meta(TeamScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["team", "number"], name="experiment_unique_team_number"),
            models.UniqueConstraint(fields=["team", "name"], name="experiment_unique_team_name"),
        ]


class ExperimentTag(models.Model):
    # db_index off where a unique constraint already leads with the foreign key: one index less per write.
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tags", db_index=False)
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "key"], name="experiment_tag_unique_key")]

    def __str__(self) -> str:
        return self.key


class Run(TeamScoped):
    run_uuid = models.CharField(max_length=32, unique=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=250, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    user_name = models.CharField(max_length=250, blank=True)
    status = models.CharField(max_length=16, default="RUNNING")
    start_time = models.BigIntegerField()
    end_time = models.BigIntegerField(null=True, blank=True)
    lifecycle_stage = models.CharField(max_length=16, choices=LIFECYCLE_CHOICES, default=ACTIVE)
    artifact_uri = models.CharField(max_length=1000, blank=True)
    source_type = models.CharField(max_length=16, default="unknown")
    source_name = models.CharField(max_length=500, blank=True)
    code_version = models.CharField(max_length=100, blank=True)

    class Meta(TeamScoped.Meta):
        indexes = [
            models.Index(fields=["experiment", "lifecycle_stage", "-start_time"]),
            models.Index(fields=["team", "-start_time"]),
        ]


class Param(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params", db_index=False)
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="param_unique_run_key")]
        # Search by value (`params.lr = '0.01'`) starts here (tracking/search/queries.py).
        indexes = [models.Index(F("key"), ValuePrefix("value"), F("run"), name="param_key_value_run")]

    def __str__(self) -> str:
        return self.key


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags", db_index=False)
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_tag_unique_run_key")]
        indexes = [models.Index(F("key"), ValuePrefix("value"), F("run"), name="run_tag_key_value_run")]

    def __str__(self) -> str:
        return self.key


class Metric(models.Model):
    """One point of a metric's history. NaN is stored as value 0 with is_nan (SQLite has no NaN).

    No database foreign key to the run (db_constraint=False), as on MetricBucket: these are the
    two tables every logged point writes to, and PostgreSQL checks a foreign key with a trigger
    per inserted row, at commit — about as long as the insert itself for a 1000-point batch.
    The write path resolves the run in the same request, runs are deleted only with their team,
    and Django's on_delete cascade still deletes the points with the run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    step = models.BigIntegerField(default=0)
    timestamp = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "key", "step", "timestamp", "value", "is_nan"], name="metric_point_unique"
            )
        ]

    def __str__(self) -> str:
        return self.key


class LatestMetric(models.Model):
    """The latest point per (run, key): max of (step, timestamp, value), as MLflow defines it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="latest_metrics", db_index=False)
    key = models.CharField(max_length=250)
    value = models.FloatField()
    is_nan = models.BooleanField(default=False)
    step = models.BigIntegerField(default=0)
    timestamp = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="latest_metric_unique_run_key")]
        indexes = [models.Index(fields=["key", "value"])]

    def __str__(self) -> str:
        return self.key


class ArtifactFile(TeamScoped):
    """A file under the team's artifact tree, by path; its bytes are content-addressed (sha256)."""

    path = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created_at = models.BigIntegerField()

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "path"], name="artifact_unique_team_path")]


class LoggedModel(TeamScoped):
    """An MLflow 3 logged model: what `mlflow.<flavor>.log_model` creates before uploading files."""

    model_id = models.CharField(max_length=40, unique=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="logged_models")
    source_run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    output_run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    output_step = models.BigIntegerField(default=0)
    name = models.CharField(max_length=250)
    model_type = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=40, default="LOGGED_MODEL_PENDING")
    status_message = models.TextField(blank=True)
    artifact_location = models.CharField(max_length=1000)
    creator = models.CharField(max_length=250, blank=True)
    tags = models.JSONField(default=dict)
    params = models.JSONField(default=dict)
    creation_timestamp_ms = models.BigIntegerField()
    last_updated_timestamp_ms = models.BigIntegerField()
    lifecycle_stage = models.CharField(max_length=16, choices=LIFECYCLE_CHOICES, default=ACTIVE)

    def __str__(self) -> str:
        return self.model_id


class MetricBucket(models.Model):
    """A summary of a metric's history over steps [bucket × width, (bucket + 1) × width): its first,
    last, lowest and highest points. Kept at a few widths as points are logged, so a chart of a
    long history reads a few thousand summary rows instead of every point (see tracking/curves.py)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    key = models.CharField(max_length=250)
    width = models.IntegerField()
    bucket = models.BigIntegerField()
    first_step = models.BigIntegerField()
    first_value = models.FloatField()
    last_step = models.BigIntegerField()
    last_value = models.FloatField()
    min_step = models.BigIntegerField()
    min_value = models.FloatField()
    max_step = models.BigIntegerField()
    max_value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key", "width", "bucket"], name="metric_bucket_unique")]

    def __str__(self) -> str:
        return f"{self.key}@{self.width}:{self.bucket}"
