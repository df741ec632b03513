"""Connections over the API and the data page's forms: roles, bad configs, secrets in use."""

from __future__ import annotations

import pytest

from cellar_server.data.models import Connection, Secret
from cellar_server.teams.models import AuditEvent
from tests.data.conftest import SECRET, SECRET_VALUE

pytestmark = pytest.mark.django_db
BASE = "/api/v1/teams/acme/connections/"
SQL = {"name": "warehouse", "kind": "sql", "config": {"url": "postgresql://reader@db/dwh", "password_secret": SECRET}}


@pytest.mark.parametrize("role,status", [("viewer", 403), ("editor", 403), ("admin", 201), ("owner", 201)], ids=str)
def test_only_admins_create_connections(api_as, members, secret, role, status):
    assert api_as(members[role]).post(BASE, SQL, format="json").status_code == status


@pytest.mark.parametrize(
    "config,code",
    [
        ({"url": f"postgresql://reader:{SECRET_VALUE}@db/dwh"}, "password_in_url"),
        ({"url": "postgresql://reader@db/dwh", "password_secret": "nope"}, "secret_not_found"),
        ({"url": "postgresql://reader@db/dwh", "bucket": "x"}, "invalid_connection_config"),
        ({}, "invalid_connection_config"),
    ],
    ids=["password-in-url", "unknown-secret", "unknown-field", "missing-url"],
)
def test_bad_configs_are_clear_errors(api_as, members, secret, config, code):
    response = api_as(members["admin"]).post(BASE, {**SQL, "config": config}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert SECRET_VALUE not in response.content.decode()
    assert Connection.all_teams.count() == 0


def test_a_connection_shows_secret_names_never_values(api_as, members, secret):
    created = api_as(members["admin"]).post(BASE, SQL, format="json").json()
    listed = api_as(members["viewer"]).get(BASE).json()["results"]
    assert listed[0]["config"] == {"url": "postgresql://reader@db/dwh", "password_secret": SECRET}
    assert created["config"] == listed[0]["config"]
    assert api_as(members["viewer"]).get(f"/api/v1/teams/acme/connections/{SQL['name']}/resolve/").status_code == 403


def test_another_team_gets_404(api_as, outsider, secret):
    assert api_as(outsider).get(BASE).status_code == 404
    assert api_as(outsider).post(BASE, SQL, format="json").status_code == 404


def test_page_forms_delete_and_refuse_a_secret_in_use(client, members, secret):
    client.force_login(members["admin"])
    page = "/t/acme/data/"
    client.post(
        page + "connections/",
        {"name": "warehouse", "kind": "sql", "sql-url": "postgresql://r@db/d", "sql-password_secret": SECRET},
    )
    assert Connection.all_teams.filter(name="warehouse").exists()
    refused = client.post(page + f"secrets/{SECRET}/delete/", follow=True)
    assert "use secret" in refused.content.decode() and Secret.all_teams.count() == 1
    client.post(page + "connections/warehouse/delete/")
    client.post(page + f"secrets/{SECRET}/delete/")
    assert Connection.all_teams.count() == 0 and Secret.all_teams.count() == 0
    assert {"connection.create", "connection.delete", "secret.delete"} <= set(
        AuditEvent.all_teams.values_list("verb", flat=True)
    )
    client.force_login(members["viewer"])
    assert client.post(page + "secrets/", {"name": "x", "value": "yyyy"}).status_code == 403
    assert client.post(page + "connections/nope/delete/").status_code == 403
