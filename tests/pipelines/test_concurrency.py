"""A double-clicked promote makes ONE version; racing different contents get distinct numbers.

Locking differs between PostgreSQL (row locks, unique-index waits) and SQLite (IMMEDIATE
transactions), so `make test` runs these on both. The requests go through the real API.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from cellar_server.pipelines.models import Pipeline, PipelineVersion, ProductionMove
from cellar_server.teams.models import AuditEvent, Team
from tests.factories import UserFactory, add_member
from tests.pipelines.conftest import churn_notebook

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_databases]


def _race(bodies: list[dict], user, slug: str) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, dict]] = []

    def post(body: dict) -> None:
        client = APIClient()
        client.force_login(user)
        try:
            barrier.wait()
            response = client.post(f"/api/v1/teams/{slug}/pipelines/churn/versions/", body, format="json")
            results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.parametrize("attempt", range(3))
def test_a_double_clicked_promote_makes_one_version(attempt):
    team = Team.objects.create(slug=f"race-{attempt}", name="Race")
    admin = add_member(team, UserFactory(username=f"admin{attempt}"), "admin")
    body = {"notebook": churn_notebook(), "production": True}
    results = _race([body, body], admin, team.slug)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 201], results
    assert len({payload["id"] for _, payload in results}) == 1
    assert PipelineVersion.all_teams.filter(team=team).count() == 1
    assert Pipeline.all_teams.filter(team=team).count() == 1
    # One creation, one alias move: the second click found both done.
    assert ProductionMove.all_teams.filter(team=team).count() == 1
    verbs = sorted(AuditEvent.all_teams.filter(team=team).values_list("verb", flat=True))
    assert verbs == ["pipeline.create", "pipeline.production_promote", "pipeline.version_create"]


def test_racing_different_contents_get_distinct_numbers():
    team = Team.objects.create(slug="race-many", name="Race")
    editor = add_member(team, UserFactory(username="editor-race"), "editor")
    bodies = [{"notebook": churn_notebook(threshold=t)} for t in (0.1, 0.2, 0.3, 0.4)]
    results = _race(bodies, editor, team.slug)
    assert sorted(status for status, _ in results) == [201, 201, 201, 201], results
    numbers = sorted(PipelineVersion.all_teams.filter(team=team).values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4]
