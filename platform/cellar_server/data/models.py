"""Team secrets, connections built on them, data sets and the runs that read them, retention."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from cellar_server.core.scoping import TeamScoped

SQL, S3, HTTP = "sql", "s3", "http"
CONNECTION_KINDS = [(SQL, "SQL database"), (S3, "S3 bucket"), (HTTP, "HTTP URL + secret")]


class Secret(TeamScoped):
    """A named value, encrypted with the server's key (data/crypto.py). Never read back by pages."""

    name = models.CharField(max_length=64)
    description = models.CharField(max_length=500, blank=True)
    ciphertext = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="data_secret_unique_team_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Connection(TeamScoped):
    """A typed connection. `config` holds no secret values, only secret names (`*_secret` keys)."""

    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=CONNECTION_KINDS)
    description = models.CharField(max_length=500, blank=True)
    config = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=150, blank=True)
    # The last "test" action: ok / failed, when, and the driver's message with secrets scrubbed.
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_message = models.CharField(max_length=1000, blank=True)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="data_connection_unique_team_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Dataset(TeamScoped):
    """One version of a data set: a URI read at one content digest."""

    name = models.CharField(max_length=250)
    uri = models.CharField(max_length=2000)
    digest = models.CharField(max_length=200)  # "sha256:<hex>", "etag:<etag>" or "version:<id>"
    kind = models.CharField(max_length=16, default="file")  # sql | s3 | file | http | mlflow
    source = models.CharField(max_length=16, default="cellar")  # cellar (SDK) | mlflow (log-inputs)
    size = models.BigIntegerField(null=True, blank=True)
    schema = models.JSONField(default=dict, blank=True)  # {"columns": [{"name", "type"}]} or MLflow's schema
    profile = models.JSONField(default=dict, blank=True)  # {"rows": n, ...}
    snapshot = models.CharField(max_length=64, blank=True)  # sha256 of the stored bytes, "" if none
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "uri", "digest"], name="data_dataset_unique_version")]
        indexes = [models.Index(fields=["team", "name"], name="data_dataset_team_name")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name}@{self.digest[:19]}"


class DatasetInput(TeamScoped):
    """A tracking run read a data set version (MLflow's run inputs)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="inputs")
    run = models.ForeignKey("tracking.Run", on_delete=models.CASCADE, related_name="+")
    context = models.CharField(max_length=100, blank=True)  # "training", "evaluation", …
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["dataset", "run", "context"], name="data_input_unique_dataset_run_context")
        ]
        ordering = ["-created_at", "-id"]


class RetentionPolicy(TeamScoped):
    """How long unreferenced artifacts stay. One per team; absent means nothing expires."""

    enabled = models.BooleanField(default=False)
    keep_last_runs = models.PositiveIntegerField(default=10)  # per pipeline
    expire_after_days = models.PositiveIntegerField(default=30)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team"], name="data_retention_one_per_team")]


class GcSweep(TeamScoped):
    """One garbage-collection sweep of a team's blobs (or a dry run of one)."""

    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    scanned = models.PositiveIntegerField(default=0)
    scanned_bytes = models.BigIntegerField(default=0)
    live = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)  # would delete, on a dry run
    freed_bytes = models.BigIntegerField(default=0)
    kept_recent = models.PositiveIntegerField(default=0)  # unreferenced but inside the grace window
    sample = models.JSONField(default=list, blank=True)  # up to 50 deleted hashes
    error = models.TextField(blank=True)

    class Meta(TeamScoped.Meta):
        ordering = ["-started_at", "-id"]
