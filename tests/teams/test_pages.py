"""Admin console pages for each role and for another team's member (the browser flow is in tests/e2e)."""

from __future__ import annotations

import pytest

from cellar_server.teams.models import ApiToken, AuditEvent, Membership
from tests.conftest import ROLES
from tests.factories import UserFactory, add_member, mint_token

pytestmark = pytest.mark.django_db

RANK = {"viewer": 0, "editor": 1, "admin": 2, "owner": 3}
PAGES = [
    ("home", "/t/acme/", "viewer"),
    ("members", "/t/acme/admin/members/", "viewer"),
    ("tokens", "/t/acme/admin/tokens/", "viewer"),
    ("quotas", "/t/acme/admin/quotas/", "viewer"),
    ("audit", "/t/acme/admin/audit/", "admin"),
]


def _login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ROLES + ["outsider"])
@pytest.mark.parametrize("path,minimum", [p[1:] for p in PAGES], ids=[p[0] for p in PAGES])
def test_page_access_by_role(client, members, outsider, role, path, minimum):
    user = outsider if role == "outsider" else members[role]
    response = _login(client, user).get(path)
    if role == "outsider":
        assert response.status_code == 404
    elif RANK[role] >= RANK[minimum]:
        assert response.status_code == 200
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("path", ["/teams/"] + [p[1] for p in PAGES])
def test_pages_need_sign_in(client, team, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_navigation_lists_every_section(client, members):
    html = _login(client, members["viewer"]).get("/t/acme/").content.decode()
    for key in ["experiments", "pipelines", "models", "deployments", "abtests", "compute", "data", "admin"]:
        assert f'data-nav="{key}"' in html


def test_team_home_names_the_team_and_counts_members_in_words(client, team, db):
    owner = add_member(team, UserFactory(username="solo"), "owner")
    html = _login(client, owner).get("/t/acme/").content.decode()
    assert "<span>member</span>" in html and "members</span>" not in html
    assert 'data-testid="current-team" title="acme">Acme ML</a>' in html
    assert "promote its cells" in html and "deploy" in html
    viewer = add_member(team, UserFactory(username="second"), "viewer")
    assert "<span>members</span>" in _login(client, viewer).get("/t/acme/").content.decode()


def test_create_team_from_the_page(client, db):
    user = UserFactory(username="maker")
    response = _login(client, user).post("/teams/", {"slug": "made-here", "name": "Made"})
    assert response.status_code == 302 and response["Location"] == "/t/made-here/admin/members/"
    assert Membership.all_teams.get(team__slug="made-here").user == user


def test_duplicate_team_on_the_page_shows_a_message(client, members):
    response = _login(client, members["viewer"]).post("/teams/", {"slug": "acme"}, follow=True)
    assert "already exists" in response.content.decode()


def test_invite_page_shows_the_link_once(client, members):
    client = _login(client, members["admin"])
    response = client.post("/t/acme/admin/members/", {"role": "editor"})
    assert response.status_code == 302  # POST/redirect/GET: a reload cannot invite twice
    html = client.get(response["Location"]).content.decode()
    assert 'data-testid="invitation-link"' in html and "/invitations/" in html
    assert 'data-testid="invitation-link"' not in client.get("/t/acme/admin/members/").content.decode()


def test_viewer_cannot_invite_from_the_page(client, team, members):
    response = _login(client, members["viewer"]).post("/t/acme/admin/members/", {"role": "editor"}, follow=True)
    assert "needs the admin role" in response.content.decode()
    assert not AuditEvent.all_teams.filter(verb="invitation.create").exists()


def test_role_change_and_last_owner_message_on_the_page(client, members):
    client = _login(client, members["owner"])
    client.post("/t/acme/admin/members/viewer-user/role/", {"role": "editor"})
    assert Membership.all_teams.get(user=members["viewer"]).role == "editor"
    html = client.post("/t/acme/admin/members/owner-user/role/", {"role": "admin"}, follow=True).content.decode()
    assert "last owner" in html
    assert Membership.all_teams.get(user=members["owner"]).role == "owner"


def test_mint_and_revoke_token_on_the_page(client, members):
    client = _login(client, members["editor"])
    response = client.post("/t/acme/admin/tokens/", {"name": "laptop", "expires": "30", "scopes": ["team:read"]})
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert 'data-testid="new-token"' not in client.get("/t/acme/admin/tokens/").content.decode()
    token = ApiToken.all_teams.get(name="laptop")
    assert f"cellar_{token.prefix}_" in html and token.scopes == ["team:read"]
    client.post(f"/t/acme/admin/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_quota_form_only_for_platform_admins(client, team, members):
    viewer_html = _login(client, members["owner"]).get("/t/acme/admin/quotas/").content.decode()
    assert 'data-testid="quota-values"' in viewer_html and 'data-testid="quota-form"' not in viewer_html
    client.post(
        "/t/acme/admin/quotas/",
        {"max_concurrent_cpu_tasks": 1, "max_concurrent_gpu_tasks": 1, "gpu_hours_per_month": 1},
    )
    team.refresh_from_db()
    assert team.max_concurrent_cpu_tasks == 64
    staff = UserFactory(username="ops", is_staff=True)
    _login(client, staff).post(
        "/t/acme/admin/quotas/",
        {"max_concurrent_cpu_tasks": 5, "max_concurrent_gpu_tasks": 2, "gpu_hours_per_month": 10},
    )
    team.refresh_from_db()
    assert (team.max_concurrent_cpu_tasks, team.max_concurrent_gpu_tasks) == (5, 2)


def test_delete_team_needs_the_slug_typed(client, team, members):
    client = _login(client, members["owner"])
    client.post("/t/acme/delete/", {"confirm": "wrong"})
    assert Membership.all_teams.filter(team=team).exists()
    response = client.post("/t/acme/delete/", {"confirm": "acme"})
    assert response["Location"] == "/teams/"
    assert not Membership.all_teams.filter(team_id=team.id).exists()


def test_audit_page_filters(client, team, members):
    client = _login(client, members["admin"])
    client.post("/t/acme/admin/members/viewer-user/role/", {"role": "editor"})
    mint_token(team, members["editor"])
    html = client.get("/t/acme/admin/audit/", {"verb": "member.role_change"}).content.decode()
    assert "member.role_change</code>" in html and "token.create</code>" not in html
    assert "1 event<" in html and "role: viewer → editor" in html


@pytest.mark.parametrize("extra", [0, 25], ids=["few", "many"])
def test_members_page_query_count_is_pinned(client, team, members, django_assert_num_queries, extra):
    for i in range(extra):
        add_member(team, UserFactory(username=f"m{i}"), "viewer")
    client = _login(client, members["admin"])
    # session, user, team, membership, member list, pending invitations
    with django_assert_num_queries(6):
        assert client.get("/t/acme/admin/members/").status_code == 200


@pytest.mark.parametrize("extra,queries", [(0, 8), (40, 9)], ids=["empty", "many"])
def test_audit_page_query_count_is_pinned(client, team, members, django_assert_num_queries, extra, queries):
    for _ in range(extra):
        mint_token(team, members["editor"])
    client = _login(client, members["admin"])
    # An empty log skips fetching the page's rows; otherwise the count stays flat however long the log.
    with django_assert_num_queries(queries):
        assert client.get("/t/acme/admin/audit/").status_code == 200


def test_role_change_with_htmx_swaps_only_the_row(client, members):
    client = _login(client, members["owner"])
    response = client.post("/t/acme/admin/members/viewer-user/role/", {"role": "editor"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<tr data-member="viewer-user">')
    assert '<option value="editor" selected>' in html
    assert 'id="messages" hx-swap-oob="true"' in html and "viewer-user is now editor." in html
    refused = client.post("/t/acme/admin/members/owner-user/role/", {"role": "viewer"}, HTTP_HX_REQUEST="true")
    refused_html = refused.content.decode()
    assert '<option value="owner" selected>' in refused_html and "last owner" in refused_html
