"""The OpenAPI 3 schema is generated without warnings and documents every endpoint."""

from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.django_db


def test_schema_lists_every_team_endpoint(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    expected = {
        "/api/v1/teams/",
        "/api/v1/me/",
        "/api/v1/invitations/accept/",
        "/api/v1/teams/{team_slug}/",
        "/api/v1/teams/{team_slug}/quotas/",
        "/api/v1/teams/{team_slug}/members/",
        "/api/v1/teams/{team_slug}/members/{username}/",
        "/api/v1/teams/{team_slug}/invitations/",
        "/api/v1/teams/{team_slug}/invitations/{id}/",
        "/api/v1/teams/{team_slug}/tokens/",
        "/api/v1/teams/{team_slug}/tokens/{id}/",
        "/api/v1/teams/{team_slug}/audit-events/",
    }
    assert expected <= paths, expected - paths
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_schema_is_valid_openapi(client):
    from openapi_spec_validator import validate

    validate(yaml.safe_load(client.get("/api/schema/").content))


def test_schema_generation_emits_no_warnings(capsys):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert "Warning" not in capsys.readouterr().err


def test_docs_page_serves_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
