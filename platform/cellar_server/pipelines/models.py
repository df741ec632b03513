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


# --- runs and tasks (the engine; ARCHITECTURE.md, "Runs and tasks") -------------------------

RUN_QUEUED, RUN_RUNNING, RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
RUN_STATES = [(s, s) for s in (RUN_QUEUED, RUN_RUNNING, RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED)]
RUN_TERMINAL = {RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED}

# A task is created when it is ready (its upstream tasks are done), so there is no "pending".
# `dispatched`: a lease was issued and the batch sent; `running`: a worker claimed it.
(
    TASK_QUEUED,
    TASK_DISPATCHED,
    TASK_RUNNING,
    TASK_SUCCEEDED,
    TASK_FAILED,
    TASK_CANCELLED,
    TASK_CACHED,
    TASK_UPSTREAM_FAILED,
) = ("queued", "dispatched", "running", "succeeded", "failed", "cancelled", "cached", "upstream_failed")
TASK_STATES = [
    (s, s)
    for s in (
        TASK_QUEUED,
        TASK_DISPATCHED,
        TASK_RUNNING,
        TASK_SUCCEEDED,
        TASK_FAILED,
        TASK_CANCELLED,
        TASK_CACHED,
        TASK_UPSTREAM_FAILED,
    )
]
TASK_DONE_OK = {TASK_SUCCEEDED, TASK_CACHED}
TASK_TERMINAL = {TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELLED, TASK_CACHED, TASK_UPSTREAM_FAILED}
TASK_IN_FLIGHT = {TASK_DISPATCHED, TASK_RUNNING}

TRIGGERS = [(t, t) for t in ("manual", "api", "cli", "schedule", "resume")]


class PipelineRun(TeamScoped):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs", db_index=False)
    version = models.ForeignKey(PipelineVersion, on_delete=models.PROTECT, related_name="runs")
    number = models.PositiveIntegerField()  # per pipeline, for people
    parameters = models.JSONField(default=dict)  # resolved values (defaults + overrides)
    state = models.CharField(max_length=16, choices=RUN_STATES, default=RUN_QUEUED)
    trigger = models.CharField(max_length=16, choices=TRIGGERS, default="api")
    use_cache = models.BooleanField(default=True)
    resumed_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    schedule = models.ForeignKey("Schedule", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs")
    tracking_run = models.CharField(max_length=32, blank=True)  # tracking Run.run_uuid
    cancel_requested = models.BooleanField(default=False)
    # Counters kept with each state change so progress needs no scan of 20,000 task rows.
    tasks_total = models.PositiveIntegerField(default=0)
    tasks_done = models.PositiveIntegerField(default=0)
    tasks_failed = models.PositiveIntegerField(default=0)
    error = models.JSONField(null=True, blank=True)  # the first failure: step, index, cell, line, message
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_run_unique_number")]
        indexes = [
            models.Index(fields=["pipeline", "-created_at"], name="pipeline_run_recent"),
            models.Index(fields=["state"], name="pipeline_run_state"),
        ]

    def __str__(self) -> str:
        return f"run {self.pipeline_id}#{self.number} {self.state}"


class Task(TeamScoped):
    """One step x foreach index of a run. Attempts are TaskAttempt rows; the current one's
    lease is here so fencing is one indexed comparison."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    step = models.CharField(max_length=64)
    index = models.IntegerField(default=-1)  # foreach element index; -1 = not a branch task
    kind = models.CharField(max_length=8, default="step")  # "step" | "expand" (evaluate the foreach iterable)
    pool = models.CharField(max_length=64, default="cpu")
    state = models.CharField(max_length=16, choices=TASK_STATES, default=TASK_QUEUED)
    attempt = models.PositiveIntegerField(default=0)  # number of the current / last attempt
    lost_attempts = models.PositiveIntegerField(default=0)  # attempts lost with their worker (not user retries)
    lease = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)  # retry backoff
    inputs = models.JSONField(default=dict)  # name -> ArtifactRef dict | list of them
    item = models.JSONField(null=True, blank=True)  # the foreach element's ArtifactRef dict
    outputs = models.JSONField(default=dict)  # name -> ArtifactRef dict
    items = models.JSONField(null=True, blank=True)  # kind "expand": the elements' ArtifactRef dicts
    logs = models.JSONField(default=dict)  # "stdout"/"stderr" -> ArtifactRef dict
    # While it runs: the end of its output so far, from the agent's heartbeats ("stdout"/"stderr"
    # -> text); emptied when the attempt ends and `logs` holds the whole output.
    live_logs = models.JSONField(default=dict, blank=True)
    cache_key = models.CharField(max_length=64, blank=True)
    cloned_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    error = models.JSONField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["run", "step", "index", "kind"], name="task_unique_step_index"),
        ]
        indexes = [
            # the dispatcher: ready work per pool, oldest first
            models.Index(fields=["state", "pool", "id"], name="task_ready"),
            models.Index(fields=["run", "state"], name="task_run_state"),
            models.Index(fields=["state", "lease_expires_at"], name="task_lease_expiry"),
        ]

    def __str__(self) -> str:
        suffix = f"[{self.index}]" if self.index >= 0 else ""
        return f"{self.step}{suffix} {self.state}"


class TaskAttempt(TeamScoped):
    """One attempt of a task: who ran it, under which lease, how it ended. Exactly one
    attempt of a succeeded task is `succeeded`; lost and stale attempts stay visible."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    number = models.PositiveIntegerField()
    lease = models.CharField(max_length=32)
    # dispatched, running, succeeded, failed, lost, timed_out, cancelled
    state = models.CharField(max_length=16, default="dispatched")
    worker = models.CharField(max_length=200, blank=True)
    error = models.JSONField(null=True, blank=True)
    dispatched_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["task", "number"], name="task_attempt_unique_number")]
        indexes = [models.Index(fields=["lease"], name="task_attempt_lease")]


class StepCacheEntry(TeamScoped):
    """Step cache: key (code hash + input hashes + parameters + environment hash) -> outputs
    by pointer. Shared by every run of the team."""

    key = models.CharField(max_length=64)
    outputs = models.JSONField(default=dict)
    task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team", "key"], name="step_cache_unique_key")]


class Schedule(TeamScoped):
    """Runs of a pipeline's `production` version on a cron expression (UTC)."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due")]


# --- notifications (a failed run of a production version; notifications.py) -------------------------------

WEBHOOK_NONE, WEBHOOK_PENDING, WEBHOOK_SENT, WEBHOOK_FAILED = "none", "pending", "sent", "failed"
WEBHOOK_STATES = [(s, s) for s in (WEBHOOK_NONE, WEBHOOK_PENDING, WEBHOOK_SENT, WEBHOOK_FAILED)]


class NotificationSettings(TeamScoped):
    """Where a team is told about its pipelines: one row per team, edited by team admins."""

    webhook_url = models.URLField(max_length=500, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TeamScoped.Meta):
        constraints = [models.UniqueConstraint(fields=["team"], name="notification_settings_one_per_team")]


class RunNotice(TeamScoped):
    """An in-app notice that a run of a production version failed: one per run (the unique run
    makes notifying idempotent when the control task runs twice), with its webhook delivery."""

    run = models.OneToOneField(PipelineRun, on_delete=models.CASCADE, related_name="notice")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+", db_index=False)
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(null=True, blank=True)
    seen_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    webhook_state = models.CharField(max_length=8, choices=WEBHOOK_STATES, default=WEBHOOK_NONE)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_status = models.PositiveSmallIntegerField(null=True, blank=True)  # the endpoint's HTTP status
    webhook_error = models.CharField(max_length=300, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta(TeamScoped.Meta):
        indexes = [models.Index(fields=["team", "seen_at", "-created_at"], name="run_notice_open")]
