"""Bad input gets a JSON error with a stable code, and writes nothing."""

from __future__ import annotations

import pytest

from cellar_server.teams.models import Invitation

pytestmark = pytest.mark.django_db


def test_malformed_json_is_400(api_as, members):
    response = api_as(members["admin"]).generic(
        "POST", "/api/v1/teams/acme/invitations/", '{"role": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert not Invitation.all_teams.exists()


def test_body_over_the_limit_is_413_before_anything_runs(api_as, members, settings):
    settings.CELLAR_MAX_BODY_BYTES = 1024
    body = '{"role": "viewer", "email": "' + "a" * 2000 + '@x.io"}'
    response = api_as(members["admin"]).generic(
        "POST", "/api/v1/teams/acme/invitations/", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert "1024" in response.json()["error"]["message"]
    assert not Invitation.all_teams.exists()


def test_wrong_content_type_is_415(api_as, members):
    response = api_as(members["admin"]).generic(
        "POST", "/api/v1/teams/acme/invitations/", "role=viewer", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_missing_field_names_the_field(api_as, members):
    response = api_as(members["admin"]).post("/api/v1/teams/acme/invitations/", {}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "role" in error["detail"]


def test_unknown_api_path_is_json_404(api_as, members):
    response = api_as(members["admin"]).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_method_not_allowed_is_json_405(api_as, members):
    response = api_as(members["admin"]).put("/api/v1/teams/acme/quotas/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_missing_team_and_other_team_answer_alike(api_as, members, other_team):
    client = api_as(members["owner"])
    missing = client.get("/api/v1/teams/does-not-exist/members/")
    foreign = client.get("/api/v1/teams/rival/members/")
    assert missing.status_code == foreign.status_code == 404
    assert missing.json() == foreign.json()


def test_csrf_is_enforced_for_session_writes(client, members):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(members["admin"])
    response = strict.post("/api/v1/teams/acme/invitations/", {"role": "viewer"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "CSRF" in response.json()["error"]["message"]
