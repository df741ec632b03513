"""The garbage collector: delete a team's content-addressed blobs that nothing references.

One sweep, for one team:

1. note the start time T and list the team's blobs with their last-used time;
2. compute the retention cut; drop expired runs' step-cache entries and artifact files;
3. ask every registered provider (core/blob_refs.py) for the live hashes;
4. delete each listed blob that is not live and was last used before T - grace, re-checking
   its time at the moment of deletion.

Concurrent writers are safe: a blob written or re-used (refreshed) after T - grace survives,
referenced or not, so a writer has the grace window to record its reference; a blob re-used
after the listing is re-checked before deletion (local: moved aside atomically first). A dry
run does steps 1-3 and reports what step 4 would free, deleting nothing.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone

from cellar_server.core import blob_refs
from cellar_server.data import gc_store, refs, retention
from cellar_server.data.models import GcSweep
from cellar_server.teams.models import Team

logger = logging.getLogger(__name__)
SAMPLE = 50


def artifact_store():
    from cellar_server.tracking.services.artifacts import artifact_store as store

    return store()


def gc_sweep(*, team: Team, dry_run: bool = False, grace_s: float | None = None) -> GcSweep:
    grace_s = settings.CELLAR_GC_GRACE_S if grace_s is None else grace_s
    started = time.time()
    sweep = GcSweep.all_teams.create(team=team, dry_run=dry_run, started_at=timezone.now())
    try:
        store = artifact_store()
        blobs = list(gc_store.list_blobs(store, team.slug))
        cut = retention.retention_cut(team=team)
        if not dry_run:
            refs.expire_cache(team, cut)
            refs.expire_artifact_files(team, cut)
        live = blob_refs.live_hashes(team, cut)
        cutoff = started - grace_s
        sample: list[str] = []
        for blob in blobs:
            sweep.scanned += 1
            sweep.scanned_bytes += blob.size
            if blob.sha256 in live:
                sweep.live += 1
                continue
            if blob.used_at >= cutoff:
                sweep.kept_recent += 1
                continue
            freed = blob.size if dry_run else gc_store.delete_if_unused_since(store, team.slug, blob.sha256, cutoff)
            if freed is None:  # used while the sweep ran
                sweep.kept_recent += 1
                continue
            sweep.deleted += 1
            sweep.freed_bytes += freed
            if len(sample) < SAMPLE:
                sample.append(blob.sha256)
        sweep.sample = sample
    except Exception as exc:  # recorded on the sweep and re-raised for the task's log
        sweep.error = f"{type(exc).__name__}: {exc}"[:2000]
        sweep.finished_at = timezone.now()
        sweep.save()
        raise
    sweep.finished_at = timezone.now()
    sweep.save()
    logger.info(
        "gc sweep",
        extra={
            "team": team.slug,
            "dry_run": dry_run,
            "scanned": sweep.scanned,
            "deleted": sweep.deleted,
            "freed_bytes": sweep.freed_bytes,
        },
    )
    return sweep


def storage_used(*, team: Team) -> tuple[int, int]:
    """(blobs, bytes) the team's content-addressed store holds now."""
    count = size = 0
    for blob in gc_store.list_blobs(artifact_store(), team.slug):
        count += 1
        size += blob.size
    return count, size
