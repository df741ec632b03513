"""Team secrets: encrypted at rest, write-only, readable by declaring steps and editors only,
never in responses, the audit log, logs or errors."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from cellar_server.core.exceptions import ServiceError
from cellar_server.data import services
from cellar_server.data.models import Secret
from cellar_server.pipelines.models import Task
from cellar_server.teams.models import AuditEvent
from tests.data.conftest import SECRET, SECRET_VALUE

pytestmark = pytest.mark.django_db
BASE = "/api/v1/teams/acme/"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_the_value_is_encrypted_at_rest(secret, settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext FROM data_secret WHERE id = %s", [secret.pk])
        (stored,) = cursor.fetchone()
    assert SECRET_VALUE not in stored
    assert Fernet(settings.CELLAR_SECRETS_KEYS[0].encode()).decrypt(stored.encode()).decode() == SECRET_VALUE
    settings.CELLAR_SECRETS_KEYS = [Fernet.generate_key().decode()]  # the wrong key cannot read it
    with pytest.raises(ServiceError) as caught:
        services.secret_value(secret=Secret.all_teams.get(pk=secret.pk))
    assert caught.value.code == "secret_undecryptable"


def test_rotation_keeps_old_values_readable_and_rewrites_them(secret, settings):
    old = settings.CELLAR_SECRETS_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.CELLAR_SECRETS_KEYS = [new, old]
    assert services.secret_value(secret=Secret.all_teams.get(pk=secret.pk)) == SECRET_VALUE
    call_command("cellar_secrets_rotate")
    settings.CELLAR_SECRETS_KEYS = [new]
    assert services.secret_value(secret=Secret.all_teams.get(pk=secret.pk)) == SECRET_VALUE


@pytest.mark.parametrize(
    "role,status", [("viewer", 403), ("editor", 403), ("admin", 201), ("owner", 201)], ids=lambda v: str(v)
)
def test_only_admins_create_secrets(api_as, members, role, status):
    response = api_as(members[role]).post(BASE + "secrets/", {"name": "key", "value": "v4lue-x"}, format="json")
    assert response.status_code == status, response.content
    if status == 201:
        assert "value" not in response.json() and "v4lue-x" not in response.content.decode()


def test_another_team_sees_nothing(api_as, outsider, secret):
    client = api_as(outsider)
    assert client.get(BASE + "secrets/").status_code == 404
    assert client.get(BASE + f"secrets/{SECRET}/value/").status_code == 404
    assert client.patch(BASE + f"secrets/{secret.pk}/", {"value": "x"}, format="json").status_code == 404


@pytest.mark.parametrize("role,status", [("viewer", 403), ("editor", 200), ("admin", 200)], ids=str)
def test_people_read_values_from_editor_up(api_as, members, secret, role, status):
    response = api_as(members[role]).get(BASE + f"secrets/{SECRET}/value/")
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json() == {"name": SECRET, "value": SECRET_VALUE}
    else:
        assert response.json()["error"]["code"] == "missing_scope"
        assert SECRET_VALUE not in response.content.decode()


def test_an_api_token_without_data_write_cannot_read_values(token_client, team, members, secret):
    client, _ = token_client(team, members["admin"], scopes=["data:read"])
    assert client.get(BASE + f"secrets/{SECRET}/value/").status_code == 403
    client, _ = token_client(team, members["admin"], scopes=["data:write"])
    assert client.get(BASE + f"secrets/{SECRET}/value/").json()["value"] == SECRET_VALUE


def test_a_step_reads_only_what_it_declared(step_tokens, team, admin_actor):
    services.connection_create(
        actor=admin_actor,
        team=team,
        name="warehouse",
        kind="sql",
        config={"url": "postgresql://reader@127.0.0.1/dwh", "password_secret": SECRET},
    )
    for step in ("literal", "tagged", "viaconn"):
        response = bearer(step_tokens[step]).get(BASE + f"secrets/{SECRET}/value/")
        assert response.status_code == 200, (step, response.content)
        assert response.json()["value"] == SECRET_VALUE
    refused = bearer(step_tokens["undeclared"]).get(BASE + f"secrets/{SECRET}/value/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "secret_not_declared"
    assert f"secrets:{SECRET}" in refused.json()["error"]["message"]
    # A connection: the step that named it gets it with the password filled in; others do not.
    resolved = bearer(step_tokens["viaconn"]).get(BASE + "connections/warehouse/resolve/")
    assert resolved.status_code == 200 and resolved.json()["config"]["password"] == SECRET_VALUE
    assert bearer(step_tokens["undeclared"]).get(BASE + "connections/warehouse/resolve/").status_code == 403


def test_a_step_token_reaches_its_own_team_only_and_only_while_it_runs(step_tokens, other_team):
    token = step_tokens["literal"]
    assert bearer(token).get(f"/api/v1/teams/{other_team.slug}/secrets/{SECRET}/value/").status_code == 404
    assert bearer(token).get(BASE + "secrets/").status_code == 403  # not a member's token: nothing else
    Task.all_teams.filter(run=step_tokens["_run"], step="literal").update(state="succeeded")
    assert bearer(token).get(BASE + f"secrets/{SECRET}/value/").status_code in (401, 403)


@pytest.mark.parametrize(
    "body,code",
    [
        ({"name": "Bad Name", "value": "x1234"}, "invalid_secret_name"),
        ({"name": "ok", "value": ""}, "invalid_secret_value"),
        ({"name": "ok", "value": 12}, "invalid_secret_value"),
        ([1, 2], "invalid_body"),
    ],
    ids=["name", "empty", "not-a-string", "not-an-object"],
)
def test_bad_input_is_a_clear_error(api_as, members, body, code):
    response = api_as(members["admin"]).post(BASE + "secrets/", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_a_duplicate_is_409_and_nothing_half_written(api_as, members, secret):
    response = api_as(members["admin"]).post(BASE + "secrets/", {"name": SECRET, "value": "zzzz9"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "secret_exists"
    assert Secret.all_teams.count() == 1
    assert AuditEvent.all_teams.filter(verb="secret.create").count() == 1


def test_the_value_appears_nowhere(api_as, members, secret, caplog, step_tokens):
    """Every response, audit record, log line and error of a secret's life, grepped for its value."""
    caplog.set_level(logging.DEBUG)
    admin = api_as(members["admin"])
    seen = []
    seen.append(admin.get(BASE + "secrets/").content)
    new_value = "n3w-" + SECRET_VALUE
    seen.append(
        admin.patch(BASE + f"secrets/{secret.pk}/", {"value": new_value, "description": "x"}, format="json").content
    )
    seen.append(admin.post(BASE + "secrets/", {"name": SECRET, "value": new_value}, format="json").content)
    seen.append(admin.get("/t/acme/data/").content)
    seen.append(bearer(step_tokens["undeclared"]).get(BASE + f"secrets/{SECRET}/value/").content)
    seen.append(api_as(members["viewer"]).get(BASE + f"secrets/{SECRET}/value/").content)
    seen.append(admin.get(BASE + f"secrets/{SECRET}/value/").content)  # the one answer that holds it
    seen.append(admin.delete(BASE + f"secrets/{secret.pk}/").content)
    audit = json.dumps(list(AuditEvent.all_teams.values("verb", "target_repr", "details")))
    assert {"secret.create", "secret.update", "secret.read", "secret.delete"} <= set(
        AuditEvent.all_teams.values_list("verb", flat=True)
    )
    for value in (SECRET_VALUE, new_value):
        assert value not in audit
        assert value not in caplog.text
        for body in seen[:-2]:
            assert value.encode() not in body
    assert new_value.encode() in seen[-2]
