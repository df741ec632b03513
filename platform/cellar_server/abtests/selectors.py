"""Reads for A/B tests."""

from __future__ import annotations

from django.db.models import QuerySet

from cellar_server.abtests.models import ABTest
from cellar_server.teams.models import Team


def abtest_list(*, team: Team, status: str | None = None, deployment: str | None = None) -> QuerySet[ABTest]:
    qs = ABTest.all_teams.filter(team=team).prefetch_related("arms", "metrics")
    if status:
        qs = qs.filter(status=status)
    if deployment:
        qs = qs.filter(deployment_name=deployment)
    return qs


def abtest_get(*, team: Team, test_id: int) -> ABTest | None:
    return ABTest.all_teams.filter(team=team, pk=test_id).prefetch_related("arms", "metrics").first()


def running_tests(*, team: Team) -> QuerySet[ABTest]:
    return ABTest.all_teams.filter(team=team, status=ABTest.RUNNING)
