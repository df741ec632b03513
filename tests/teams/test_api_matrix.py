"""Every team endpoint, for each role and for a member of another team.

Each row: (method, path template, body, minimum role allowed). Roles below the
minimum get 403; another team's owner gets 404, the same as a missing team.
"""

from __future__ import annotations

import pytest

from cellar_server.teams.models import ApiToken, Invitation
from tests.conftest import ROLES
from tests.factories import UserFactory, add_member, mint_token

pytestmark = pytest.mark.django_db

ALLOWED = {"viewer": 0, "editor": 1, "admin": 2, "owner": 3}


def _invitation(team, by):
    return Invitation.all_teams.create(
        team=team, role="viewer", token_hash="h" * 64, invited_by=by, expires_at="2999-01-01T00:00:00Z"
    )


# (id, method, path, body, minimum role, success status); lower roles get 403,
# except where they cannot even see the object (then 404, like another team's).
ENDPOINTS = [
    ("team-get", "get", "/api/v1/teams/acme/", None, "viewer", 200),
    ("team-patch", "patch", "/api/v1/teams/acme/", {"name": "Acme 2"}, "admin", 200),
    ("team-delete", "delete", "/api/v1/teams/acme/", None, "owner", 204),
    ("quotas-get", "get", "/api/v1/teams/acme/quotas/", None, "viewer", 200),
    ("members-list", "get", "/api/v1/teams/acme/members/", None, "viewer", 200),
    ("member-patch", "patch", "/api/v1/teams/acme/members/target/", {"role": "editor"}, "admin", 200),
    ("member-delete", "delete", "/api/v1/teams/acme/members/target/", None, "admin", 204),
    ("invitations-list", "get", "/api/v1/teams/acme/invitations/", None, "viewer", 200),
    ("invitations-create", "post", "/api/v1/teams/acme/invitations/", {"role": "viewer"}, "admin", 201),
    ("invitation-delete", "delete", "/api/v1/teams/acme/invitations/{invitation}/", None, "admin", 204),
    ("tokens-list", "get", "/api/v1/teams/acme/tokens/", None, "viewer", 200),
    ("tokens-create", "post", "/api/v1/teams/acme/tokens/", {"name": "ci", "scopes": ["team:read"]}, "viewer", 201),
    ("token-delete-own", "delete", "/api/v1/teams/acme/tokens/{own_token}/", None, "viewer", 204),
    ("token-delete-other", "delete", "/api/v1/teams/acme/tokens/{target_token}/", None, "admin", 204),  # hidden
    ("audit-list", "get", "/api/v1/teams/acme/audit-events/", None, "admin", 200),
]


@pytest.fixture
def world(team, members, outsider):
    target = add_member(team, UserFactory(username="target"), "viewer")
    target_token, _ = mint_token(team, target, scopes=["team:read"])
    invitation = _invitation(team, members["owner"])
    return {"target_token": target_token.pk, "invitation": invitation.pk}


def _path(template, world, user, team):
    own_token = None
    if "{own_token}" in template:
        own_token = mint_token(team, user, scopes=["team:read"])[0].pk if user.username != "outsider" else 1
    return template.format(own_token=own_token, **world)


@pytest.mark.parametrize("role", ROLES + ["outsider"])
@pytest.mark.parametrize(
    "method,template,body,minimum,success", [e[1:] for e in ENDPOINTS], ids=[e[0] for e in ENDPOINTS]
)
def test_endpoint_by_role(api_as, team, members, outsider, world, role, method, template, body, minimum, success):
    user = outsider if role == "outsider" else members[role]
    path = _path(template, world, user, team)
    response = getattr(api_as(user), method)(path, body, format="json")
    if role == "outsider":
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    elif ALLOWED[role] >= ALLOWED[minimum]:
        assert response.status_code == success, response.content
    elif template.endswith("{target_token}/"):
        assert response.status_code == 404, response.content  # others' tokens are invisible below admin
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "missing_scope"


@pytest.mark.parametrize("method,template,body", [(e[1], e[2], e[3]) for e in ENDPOINTS], ids=[e[0] for e in ENDPOINTS])
def test_endpoint_anonymous_is_401(api, world, method, template, body):
    response = getattr(api, method)(template.format(own_token=1, **world), body, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ROLES)
def test_staff_non_member_reads_and_edits_quotas_only(api_as, team, members, role):
    staff = UserFactory(username="ops", is_staff=True)
    client = api_as(staff)
    assert client.get("/api/v1/teams/acme/quotas/").status_code == 200
    response = client.patch("/api/v1/teams/acme/quotas/", {"max_concurrent_gpu_tasks": 9}, format="json")
    assert response.status_code == 200
    assert response.json()["max_concurrent_gpu_tasks"] == 9
    assert client.get("/api/v1/teams/acme/audit-events/").status_code == 403
    # No member, whatever their role, edits quotas.
    member_response = api_as(members[role]).patch(
        "/api/v1/teams/acme/quotas/", {"max_concurrent_gpu_tasks": 1}, format="json"
    )
    assert member_response.status_code == 403


def test_token_list_shows_own_tokens_to_members_and_all_to_admins(api_as, team, members):
    for user in members.values():
        mint_token(team, user, scopes=["team:read"])
    viewer_rows = api_as(members["viewer"]).get("/api/v1/teams/acme/tokens/").json()["results"]
    admin_rows = api_as(members["admin"]).get("/api/v1/teams/acme/tokens/").json()["results"]
    assert {r["user"] for r in viewer_rows} == {"viewer-user"}
    assert {r["user"] for r in admin_rows} == set(u.username for u in members.values())
    assert all("token" not in r for r in admin_rows)  # the secret is never listed


def test_editor_cannot_revoke_someone_elses_token(api_as, team, members):
    token, _ = mint_token(team, members["admin"], scopes=["team:read"])
    response = api_as(members["editor"]).delete(f"/api/v1/teams/acme/tokens/{token.pk}/")
    assert response.status_code == 404  # other members' tokens are not even visible to editors
    assert ApiToken.all_teams.get(pk=token.pk).revoked_at is None
