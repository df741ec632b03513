"""Reads for pipelines: lists for the API and pages, a version by number or id prefix, alias history.

Callers are inside `team_scope` (TeamScopedViewSet and `team_page` enter it); the
fail-closed managers refuse otherwise. List queries leave the specs (the large JSON) out.
"""

from __future__ import annotations

import re

from django.db.models import Count, Max, QuerySet

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.models import Pipeline, PipelineVersion, ProductionMove

MIN_PREFIX = 8
_NUMBER = re.compile(r"^v?(\d{1,7})$", re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-f]{8,64}$")
# What a version row needs for tables and headers: everything but the spec.
LIST_FIELDS = ("id", "team", "pipeline", "hash", "number", "step_count", "notebook", "created_by", "created_at")


def pipeline_list() -> QuerySet[Pipeline]:
    """Every pipeline of the scoped team, newest activity first, with version counts."""
    return (
        Pipeline.objects.select_related("production", "created_by")
        .defer("production__spec", "production__warnings")
        .annotate(version_count=Count("versions"), latest_number=Max("versions__number"))
        .annotate(latest_at=Max("versions__created_at"))
        .order_by("-latest_at", "name")
    )


def pipeline_for_name(*, name: str) -> Pipeline | None:
    return (
        Pipeline.objects.select_related("production", "created_by")
        .defer("production__spec", "production__warnings")
        .filter(name=name)
        .first()
    )


def version_list(*, pipeline: Pipeline) -> QuerySet[PipelineVersion]:
    return (
        PipelineVersion.objects.filter(pipeline=pipeline)
        .select_related("created_by")
        .only(*LIST_FIELDS, "created_by__username")
        .order_by("-number")
    )


def version_for_ref(*, pipeline: Pipeline, ref: str, full: bool = True) -> PipelineVersion | None:
    """A version by its number (`3`, `v3`) or its id, whole or a unique prefix of 8+ characters.

    None when nothing matches (404); ServiceError for a malformed or ambiguous reference.
    """
    ref = (ref or "").strip().lower()
    queryset = PipelineVersion.objects.filter(pipeline=pipeline).select_related("created_by")
    if not full:
        queryset = queryset.only(*LIST_FIELDS, "created_by__username")
    number = _NUMBER.match(ref)
    if number and len(ref) < MIN_PREFIX:
        return queryset.filter(number=int(number.group(1))).first()
    if not _HEX.match(ref):
        raise ServiceError(
            "invalid_version_ref",
            f"'{ref[:80]}' does not name a version: use its number (3 or v3) or at least the first "
            f"{MIN_PREFIX} characters of its id.",
        )
    if len(ref) == 64:
        return queryset.filter(hash=ref).first()
    matches = list(queryset.filter(hash__startswith=ref)[:2])
    if len(matches) > 1:
        raise ServiceError(
            "ambiguous_version_ref", f"More than one version id starts with '{ref}'; give more characters."
        )
    return matches[0] if matches else None


def production_history(*, pipeline: Pipeline) -> QuerySet[ProductionMove]:
    """The alias's moves, newest first, with both versions' numbers and hashes."""
    return (
        ProductionMove.objects.filter(pipeline=pipeline)
        .select_related("from_version", "to_version", "actor")
        .only(
            "id",
            "kind",
            "created_at",
            "actor_name",
            "actor",
            "actor__username",
            "from_version",
            "to_version",
            "from_version__number",
            "from_version__hash",
            "to_version__number",
            "to_version__hash",
        )
        .order_by("-created_at", "-id")
    )


def version_numbers(*, pipeline: Pipeline) -> list[tuple[int, int, str]]:
    """(pk, number, short id) of every version, newest first: the compare form's choices."""
    rows = PipelineVersion.objects.filter(pipeline=pipeline).order_by("-number").values_list("pk", "number", "hash")
    return [(pk, number, digest[:12]) for pk, number, digest in rows]
