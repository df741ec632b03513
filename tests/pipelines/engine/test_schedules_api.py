"""/api/v1/teams/<team>/pipelines/<name>/schedules/: every role, another team, bad input."""

from __future__ import annotations

import pytest

from cellar_server.pipelines.models import Schedule
from cellar_server.teams.models import AuditEvent
from tests.pipelines.engine.dispatch_fixtures import version_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/teams/{team}/pipelines/{name}/schedules/"
ROLES = ["viewer", "editor", "admin", "owner"]
WRITERS = {"admin", "owner"}


@pytest.fixture
def production(team):
    return version_for(team, production=True)


@pytest.fixture
def schedule(team, production, members, api_as):
    response = api_as(members["admin"]).post(
        URL.format(team="acme", name="fan"), {"cron": "0 3 * * *", "parameters": {"n": 4}}, format="json"
    )
    assert response.status_code == 201, response.content
    return Schedule.all_teams.get(pk=response.json()["id"])


def _detail(schedule: Schedule, team: str = "acme", name: str = "fan") -> str:
    return URL.format(team=team, name=name) + f"{schedule.pk}/"


@pytest.mark.parametrize("role", ROLES)
def test_every_member_reads_schedules(role, members, api_as, schedule, production):
    client = api_as(members[role])
    listing = client.get(URL.format(team="acme", name="fan"))
    assert listing.status_code == 200
    [row] = listing.json()["results"]
    assert row["id"] == schedule.pk and row["cron"] == "0 3 * * *" and row["timezone"] == "UTC"
    assert row["parameters"] == {"n": 4} and row["enabled"] is True
    assert row["next_run_at"] is not None and row["last_run_at"] is None
    assert row["created_by"] == "admin-user"
    assert row["production"] == {"id": production.hash, "number": production.number}
    assert client.get(_detail(schedule)).json() == row


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_create_schedules(role, members, api_as, production):
    response = api_as(members[role]).post(URL.format(team="acme", name="fan"), {"cron": "*/5 * * * *"}, format="json")
    if role in WRITERS:
        assert response.status_code == 201
        assert response.json()["cron"] == "*/5 * * * *"
        assert Schedule.all_teams.count() == 1
        event = AuditEvent.all_teams.get(verb="pipeline.schedule_create")
        assert event.actor == members[role]
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "missing_scope"
        assert "pipelines:promote" in response.json()["error"]["message"]
        assert not Schedule.all_teams.exists()


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_change_and_delete_schedules(role, members, api_as, schedule):
    client = api_as(members[role])
    changed = client.patch(_detail(schedule), {"cron": "30 6 * * *", "enabled": False}, format="json")
    deleted = client.delete(_detail(schedule))
    if role in WRITERS:
        assert changed.status_code == 200
        assert changed.json()["cron"] == "30 6 * * *" and changed.json()["next_run_at"] is None
        assert deleted.status_code == 204
        assert not Schedule.all_teams.exists()
        verbs = set(AuditEvent.all_teams.values_list("verb", flat=True))
        assert {"pipeline.schedule_update", "pipeline.schedule_delete"} <= verbs
    else:
        assert (changed.status_code, deleted.status_code) == (403, 403)
        schedule.refresh_from_db()
        assert schedule.cron == "0 3 * * *" and schedule.enabled


def test_a_token_without_the_promote_scope_cannot_create(members, token_client, team, production):
    client, _token = token_client(team, members["admin"], scopes=["pipelines:read", "pipelines:write"])
    response = client.post(URL.format(team="acme", name="fan"), {"cron": "0 3 * * *"}, format="json")
    assert response.status_code == 403
    assert client.get(URL.format(team="acme", name="fan")).status_code == 200


def test_another_team_sees_nothing(outsider, api_as, schedule, other_team):
    client = api_as(outsider)
    assert client.get(URL.format(team="acme", name="fan")).status_code == 404
    assert client.get(_detail(schedule)).status_code == 404
    assert client.post(URL.format(team="acme", name="fan"), {"cron": "0 3 * * *"}, format="json").status_code == 404
    assert client.delete(_detail(schedule)).status_code == 404
    # nor through their own team's pipeline of the same name
    version_for(other_team, production=True)
    assert client.get(_detail(schedule, team="rival")).status_code == 404
    assert client.patch(_detail(schedule, team="rival"), {"enabled": False}, format="json").status_code == 404
    assert Schedule.all_teams.get(pk=schedule.pk).enabled


def test_anonymous_is_refused(api, schedule):
    response = api.get(URL.format(team="acme", name="fan"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"cron": "every morning"}, "invalid_cron"),
        ({"cron": "0 25 * * *"}, "invalid_cron"),
        ({}, "invalid"),
        ({"cron": "0 3 * * *", "parameters": [1, 2]}, "invalid_parameters"),
        ({"cron": "0 3 * * *", "parameters": {"nope": 1}}, "invalid_parameters"),
        ({"cron": "0 3 * * *", "parameters": {"n": "three"}}, "invalid_parameters"),
        ({"cron": "0 3 * * *", "enabled": "maybe"}, "invalid"),
        ({"cron": "x" * 101}, "invalid"),
    ],
    ids=["words", "hour-25", "no-cron", "list-parameters", "unknown-parameter", "mistyped", "enabled", "too-long"],
)
def test_bad_input_is_a_json_error_and_writes_nothing(body, code, members, api_as, production):
    response = api_as(members["admin"]).post(URL.format(team="acme", name="fan"), body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not Schedule.all_teams.exists()
    assert not AuditEvent.all_teams.filter(verb__startswith="pipeline.schedule").exists()


def test_a_bad_change_writes_nothing(members, api_as, schedule):
    client = api_as(members["admin"])
    response = client.patch(_detail(schedule), {"enabled": False, "cron": "nope"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_cron"
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.cron == "0 3 * * *"


def test_missing_pipelines_and_schedules_are_404(members, api_as, schedule):
    client = api_as(members["admin"])
    assert client.get(URL.format(team="acme", name="nope")).status_code == 404
    assert client.post(URL.format(team="acme", name="nope"), {"cron": "0 3 * * *"}, format="json").status_code == 404
    missing = URL.format(team="acme", name="fan") + f"{schedule.pk + 1000}/"
    assert client.get(missing).status_code == 404
    assert client.delete(missing).status_code == 404


def test_a_pipeline_without_production_can_be_scheduled_and_says_so(team, members, api_as):
    version_for(team)  # not production
    response = api_as(members["admin"]).post(URL.format(team="acme", name="fan"), {"cron": "@daily"}, format="json")
    assert response.status_code == 201
    assert response.json()["production"] is None


def test_the_list_has_a_pinned_query_count(members, api_as, production, django_assert_num_queries):
    client = api_as(members["admin"])
    for minute in range(5):
        client.post(URL.format(team="acme", name="fan"), {"cron": f"{minute} 3 * * *"}, format="json")
    viewer = api_as(members["viewer"])
    viewer.get(URL.format(team="acme", name="fan"))  # warm the session
    # session, user, team, membership, pipeline (with production), count, page (with creators): no N+1
    with django_assert_num_queries(7):
        response = viewer.get(URL.format(team="acme", name="fan"))
    assert len(response.json()["results"]) == 5
