"""Reads for the data layer: secrets by name, connections, data sets and their runs, lineage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, QuerySet

from cellar_server.core.scoping import team_scope
from cellar_server.data.models import Connection, Dataset, DatasetInput, GcSweep, RetentionPolicy, Secret
from cellar_server.teams.models import Team


def secret_list(*, team: Team) -> QuerySet[Secret]:
    with team_scope(team.id):
        return Secret.objects.all().defer("ciphertext")


def secret_for_name(*, team: Team, name: str) -> Secret | None:
    with team_scope(team.id):
        return Secret.objects.filter(name=name).first()


def connection_list(*, team: Team) -> QuerySet[Connection]:
    with team_scope(team.id):
        return Connection.objects.all()


def connection_for_name(*, team: Team, name: str) -> Connection | None:
    with team_scope(team.id):
        return Connection.objects.filter(name=name).first()


def dataset_list(*, team: Team, name: str | None = None) -> QuerySet[Dataset]:
    with team_scope(team.id):
        rows = Dataset.objects.annotate(run_count=Count("inputs")).order_by("-created_at", "-id")
        return rows.filter(name=name) if name else rows


def dataset_inputs(*, dataset: Dataset, limit: int = 200) -> list[DatasetInput]:
    with team_scope(dataset.team_id):
        return list(
            DatasetInput.objects.filter(dataset=dataset)
            .select_related("run", "run__experiment")
            .order_by("-id")[:limit]
        )


def dataset_runs_preview(*, datasets: Iterable[Dataset], per_dataset: int = 5) -> dict[int, list[DatasetInput]]:
    """A few runs per data set for a list page (one query)."""
    ids = [d.pk for d in datasets]
    if not ids:
        return {}
    out: dict[int, list[DatasetInput]] = defaultdict(list)
    rows = DatasetInput.all_teams.filter(dataset_id__in=ids).select_related("run", "run__experiment").order_by("-id")
    for row in rows[: per_dataset * len(ids) * 4]:
        if len(out[row.dataset_id]) < per_dataset:
            out[row.dataset_id].append(row)
    return out


def dataset_body(dataset: Dataset, context: str = "") -> dict[str, Any]:
    return {
        "dataset_id": dataset.pk,
        "name": dataset.name,
        "uri": dataset.uri,
        "digest": dataset.digest,
        "kind": dataset.kind,
        "source": dataset.source,
        "size": dataset.size,
        "schema": dataset.schema,
        "profile": dataset.profile,
        "snapshot": dataset.snapshot or None,
        "context": context,
        "created_at": dataset.created_at.isoformat(),
    }


def datasets_for_runs(*, team: Team, run_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Lineage: for each tracking run id (run_uuid) the data set versions it read, oldest first.

    {run_uuid: [{"dataset_id", "name", "uri", "digest", "kind", "source", "size", "schema",
                 "profile", "snapshot", "context", "created_at", "reused_from"}]}; runs that read none
    are absent, and so are another team's. A pipeline run whose steps came from the step cache did
    not read again what those steps read: the reads of the run that computed them are included, with
    `reused_from` naming that run (None for the run's own reads). Three queries."""
    from cellar_server.pipelines.selectors import reused_tracking_runs

    run_ids = [r for r in set(run_ids) if r]
    if not run_ids:
        return {}
    with team_scope(team.id):
        reused = reused_tracking_runs(tracking_runs=run_ids)
        wanted = set(run_ids).union(*reused.values()) if reused else set(run_ids)
        rows = DatasetInput.objects.filter(run__run_uuid__in=wanted).select_related("dataset", "run").order_by("id")
        read: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            read[row.run.run_uuid].append({**dataset_body(row.dataset, row.context), "reused_from": None})
    out: dict[str, list[dict[str, Any]]] = {}
    for run in run_ids:
        found = list(read.get(run, []))
        seen = {(d["dataset_id"], d["context"]) for d in found}
        for source in reused.get(run, []):
            for body in read.get(source, []):
                if (body["dataset_id"], body["context"]) not in seen:
                    seen.add((body["dataset_id"], body["context"]))
                    found.append({**body, "reused_from": source})
        if found:
            out[run] = found
    return out


def inputs_changed(*, team: Team, run_a: str, run_b: str) -> list[dict[str, Any]]:
    """What differs between two runs' inputs, per data set name (for "the input changed" in diffs):
    [{"name", "a": digest | None, "b": digest | None}] for names whose digests differ."""
    found = datasets_for_runs(team=team, run_ids=[run_a, run_b])
    by_name: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"a": set(), "b": set()})
    for side, run in (("a", run_a), ("b", run_b)):
        for row in found.get(run, []):
            by_name[row["name"]][side].add(row["digest"])
    changes = []
    for name, sides in sorted(by_name.items()):
        if sides["a"] != sides["b"]:
            changes.append(
                {"name": name, "a": ", ".join(sorted(sides["a"])) or None, "b": ", ".join(sorted(sides["b"])) or None}
            )
    return changes


def retention_policy(*, team: Team) -> RetentionPolicy | None:
    with team_scope(team.id):
        return RetentionPolicy.objects.first()


def gc_sweeps(*, team: Team, limit: int = 10) -> list[GcSweep]:
    with team_scope(team.id):
        return list(GcSweep.objects.all()[:limit])


def storage_measured(*, team: Team) -> GcSweep | None:
    """The team's last successful sweep (dry or not): its scanned bytes are the storage in use."""
    with team_scope(team.id):
        return GcSweep.objects.filter(error="", finished_at__isnull=False).first()
