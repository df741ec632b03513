"""Retention: which tracking runs' artifacts may go.

A run's artifacts (its files and, for a pipeline run, its tasks' values and logs) expire when
the team's policy is enabled, the run started more than `expire_after_days` ago, and no rule
keeps it:

- it is pinned (tracking tag `cellar.pinned` = `true`),
- it ran the production version of its pipeline,
- it is one of its pipeline's last `keep_last_runs` runs,
- it is still running,
- a registered keeper names it (the registry keeps its model versions' runs).

Only the bytes go: the runs, their metrics, params and task records stay.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from cellar_server.core import blob_refs
from cellar_server.core.blob_refs import RetentionCut
from cellar_server.core.scoping import team_scope
from cellar_server.data.models import RetentionPolicy
from cellar_server.teams.models import Team

PIN_TAG = "cellar.pinned"


def retention_cut(*, team: Team, now=None) -> RetentionCut:
    with team_scope(team.id):
        policy = RetentionPolicy.objects.first()
    if policy is None or not policy.enabled:
        return RetentionCut()
    now = now or timezone.now()
    before = now - timedelta(days=policy.expire_after_days)
    candidates = _old_finished_runs(team, before)
    if not candidates:
        return RetentionCut(expired_before=before)
    kept = _pinned(team) | _pipeline_kept(team, policy.keep_last_runs) | blob_refs.kept_runs(team)
    return RetentionCut(expired_runs=frozenset(candidates - kept), expired_before=before)


def _old_finished_runs(team: Team, before) -> set[str]:
    from cellar_server.tracking.models import Run

    before_ms = int(before.timestamp() * 1000)
    with team_scope(team.id):
        rows = Run.objects.filter(start_time__lt=before_ms).exclude(status="RUNNING")
        return set(rows.values_list("run_uuid", flat=True))


def _pinned(team: Team) -> set[str]:
    from cellar_server.tracking.models import RunTag

    rows = RunTag.objects.filter(run__team_id=team.id, key=PIN_TAG, value__iexact="true")
    return set(rows.values_list("run__run_uuid", flat=True))


def _pipeline_kept(team: Team, keep_last: int) -> set[str]:
    from cellar_server.pipelines.models import PipelineRun

    with team_scope(team.id):
        production = PipelineRun.objects.filter(version_id=F("pipeline__production_id"))
        kept = set(production.values_list("tracking_run", flat=True))
        if keep_last:
            ranked = PipelineRun.objects.annotate(
                rank=Window(RowNumber(), partition_by=[F("pipeline_id")], order_by=F("number").desc())
            ).values_list("tracking_run", "rank")
            kept |= {run for run, rank in ranked if rank <= keep_last}
    return {r for r in kept if r}
