"""The blob references this app knows how to find: registered in core/blob_refs.py at start-up.

- tracking.artifacts  every ArtifactFile's bytes, except files of runs the retention cut expires
- pipelines.tasks     task inputs, outputs, foreach items and logs, except in expired runs
- pipelines.cache     step-cache entries, except those written by tasks of expired runs
- data.snapshots      data set snapshots (always kept: a rerun reads them)

The pipelines and tracking providers live here, not in their apps, because retention is this
app's concern; they only read those apps' rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from cellar_server.core import blob_refs
from cellar_server.core.blob_refs import RetentionCut
from cellar_server.teams.models import Team

_RUN_UUID = re.compile(r"^[0-9a-f]{32}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def refs_in(value: Any) -> Iterator[str]:
    """Every stored blob hash in an ArtifactRef dict, or lists/dicts of them (inline values are not blobs)."""
    if isinstance(value, dict):
        sha = value.get("sha256")
        if isinstance(sha, str) and _SHA.match(sha) and value.get("inline") is None:
            yield sha
            return
        for item in value.values():
            yield from refs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs_in(item)


def tracking_artifacts(team: Team, cut: RetentionCut) -> Iterable[str]:
    from cellar_server.tracking.models import ArtifactFile

    rows = ArtifactFile.all_teams.filter(team_id=team.id).values_list("path", "sha256")
    for path, sha in rows.iterator(chunk_size=5000):
        parts = path.split("/", 2)
        if cut.expired_runs and len(parts) > 1 and _RUN_UUID.match(parts[1]) and parts[1] in cut.expired_runs:
            continue
        yield sha


def pipeline_tasks(team: Team, cut: RetentionCut) -> Iterable[str]:
    from cellar_server.pipelines.models import Task

    rows = Task.all_teams.filter(team_id=team.id)
    if cut.expired_runs:
        rows = rows.exclude(run__tracking_run__in=cut.expired_runs)
    for row in rows.values_list("inputs", "outputs", "item", "items", "logs").iterator(chunk_size=2000):
        yield from refs_in(list(row))


def pipeline_cache(team: Team, cut: RetentionCut) -> Iterable[str]:
    from cellar_server.pipelines.models import StepCacheEntry

    rows = StepCacheEntry.all_teams.filter(team_id=team.id)
    if cut.expired_runs:
        rows = rows.exclude(task__run__tracking_run__in=cut.expired_runs)
    for outputs in rows.values_list("outputs", flat=True).iterator(chunk_size=5000):
        yield from refs_in(outputs)


def expire_cache(team: Team, cut: RetentionCut) -> int:
    """Delete step-cache entries written by expired runs' tasks, so no later run hits a cache
    entry whose bytes the sweep deletes. Called before the live set is computed."""
    if not cut.expired_runs:
        return 0
    from cellar_server.pipelines.models import StepCacheEntry

    rows = StepCacheEntry.all_teams.filter(team_id=team.id, task__run__tracking_run__in=cut.expired_runs)
    return rows.delete()[0]


def expire_artifact_files(team: Team, cut: RetentionCut) -> int:
    """Remove expired runs' artifact files (through the tracking service), so their listings do
    not offer files whose bytes the sweep deletes. Returns how many runs had files."""
    if not cut.expired_runs:
        return 0
    from cellar_server.tracking.errors import TrackingError
    from cellar_server.tracking.models import Run
    from cellar_server.tracking.services.artifacts import artifact_delete

    runs = Run.all_teams.filter(team_id=team.id, run_uuid__in=cut.expired_runs)
    count = 0
    for number, run_uuid in runs.values_list("experiment__number", "run_uuid"):
        try:
            artifact_delete(team=team, path=f"{number}/{run_uuid}")
        except TrackingError:  # no files
            continue
        count += 1
    return count


def dataset_snapshots(team: Team, cut: RetentionCut) -> Iterable[str]:
    from cellar_server.data.models import Dataset

    return Dataset.all_teams.filter(team_id=team.id).exclude(snapshot="").values_list("snapshot", flat=True)


def register_all() -> None:
    blob_refs.register("tracking.artifacts", tracking_artifacts)
    blob_refs.register("pipelines.tasks", pipeline_tasks)
    blob_refs.register("pipelines.cache", pipeline_cache)
    blob_refs.register("data.snapshots", dataset_snapshots)
