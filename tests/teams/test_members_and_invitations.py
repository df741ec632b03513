"""Members, roles and invitations through the API, with their audit entries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cellar_server.teams.models import AuditEvent, Invitation, Membership, Team
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def _audit(team, verb):
    return list(AuditEvent.all_teams.filter(team=team, verb=verb))


def _secret_from(response):
    return response.json()["url"].rstrip("/").rsplit("/", 1)[1]


def test_create_team_makes_the_caller_owner_and_audits(api_as, db):
    user = UserFactory(username="founder")
    response = api_as(user).post("/api/v1/teams/", {"slug": "vision", "name": "Vision"}, format="json")
    assert response.status_code == 201
    assert response.json() == {**response.json(), "slug": "vision", "role": "owner"}
    team = Team.objects.get(slug="vision")
    assert Membership.all_teams.get(team=team).role == "owner"
    [event] = _audit(team, "team.create")
    assert event.actor == user and event.target_repr == "vision"


def test_duplicate_slug_is_409_and_writes_nothing(api_as, team, members):
    before = AuditEvent.all_teams.count()
    response = api_as(members["viewer"]).post("/api/v1/teams/", {"slug": "acme"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate_slug"
    assert AuditEvent.all_teams.count() == before
    assert Team.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize("slug", ["Has Caps", "under_score", "", "api", "x" * 51, "émoji"])
def test_invalid_slug_is_400(api_as, members, slug):
    response = api_as(members["viewer"]).post("/api/v1/teams/", {"slug": slug}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_slug", "invalid"}
    assert not Team.objects.exclude(slug="acme").exists()


def test_invalid_role_is_400_and_changes_nothing(api_as, team, members):
    response = api_as(members["owner"]).patch(
        "/api/v1/teams/acme/members/editor-user/", {"role": "superuser"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_role",
        "message": "'superuser' is not a role; choose one of: viewer, editor, admin, owner.",
    }
    assert Membership.all_teams.get(user=members["editor"]).role == "editor"
    assert not _audit(team, "member.role_change")


def test_role_change_is_audited_with_before_and_after(api_as, team, members):
    response = api_as(members["admin"]).patch(
        "/api/v1/teams/acme/members/viewer-user/", {"role": "editor"}, format="json"
    )
    assert response.status_code == 200 and response.json()["role"] == "editor"
    [event] = _audit(team, "member.role_change")
    assert event.actor == members["admin"]
    assert event.details == {"role": {"from": "viewer", "to": "editor"}}
    assert event.target_repr == "viewer-user"


def test_admin_cannot_make_or_touch_owners(api_as, team, members):
    client = api_as(members["admin"])
    promote = client.patch("/api/v1/teams/acme/members/editor-user/", {"role": "owner"}, format="json")
    assert promote.status_code == 403 and promote.json()["error"]["code"] == "owner_required"
    demote = client.patch("/api/v1/teams/acme/members/owner-user/", {"role": "viewer"}, format="json")
    assert demote.status_code == 403
    remove = client.delete("/api/v1/teams/acme/members/owner-user/")
    assert remove.status_code == 403
    assert Membership.all_teams.get(user=members["owner"]).role == "owner"


def test_last_owner_cannot_be_removed_or_demoted(api_as, team, members):
    client = api_as(members["owner"])
    leave = client.delete("/api/v1/teams/acme/members/owner-user/")
    assert leave.status_code == 409 and leave.json()["error"]["code"] == "last_owner"
    demote = client.patch("/api/v1/teams/acme/members/owner-user/", {"role": "admin"}, format="json")
    assert demote.status_code == 409
    assert Membership.all_teams.get(user=members["owner"]).role == "owner"


def test_an_owner_can_leave_once_another_owner_exists(api_as, team, members):
    client = api_as(members["owner"])
    assert client.patch("/api/v1/teams/acme/members/admin-user/", {"role": "owner"}, format="json").status_code == 200
    assert client.delete("/api/v1/teams/acme/members/owner-user/").status_code == 204
    assert not Membership.all_teams.filter(user=members["owner"]).exists()
    assert _audit(team, "member.leave")


def test_any_member_can_leave(api_as, team, members):
    assert api_as(members["viewer"]).delete("/api/v1/teams/acme/members/viewer-user/").status_code == 204
    [event] = _audit(team, "member.leave")
    assert event.actor == members["viewer"]


def test_unknown_member_is_404(api_as, members):
    assert api_as(members["admin"]).delete("/api/v1/teams/acme/members/nobody/").status_code == 404


def test_invitation_link_flow(api_as, team, members):
    response = api_as(members["admin"]).post(
        "/api/v1/teams/acme/invitations/", {"role": "editor", "email": "new@example.com"}, format="json"
    )
    assert response.status_code == 201
    secret = _secret_from(response)
    newcomer = UserFactory(username="newcomer")
    accepted = api_as(newcomer).post("/api/v1/invitations/accept/", {"token": secret}, format="json")
    assert accepted.status_code == 201 and accepted.json()["role"] == "editor"
    assert Membership.all_teams.get(team=team, user=newcomer).role == "editor"
    assert _audit(team, "invitation.create") and _audit(team, "invitation.accept")
    again = api_as(UserFactory(username="second")).post("/api/v1/invitations/accept/", {"token": secret}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invitation_not_pending"


def test_expired_and_revoked_invitations_are_refused(api_as, team, members):
    client = api_as(members["admin"])
    expired = _secret_from(client.post("/api/v1/teams/acme/invitations/", {"role": "viewer"}, format="json"))
    Invitation.all_teams.filter(team=team).update(expires_at=timezone.now() - timedelta(minutes=1))
    revoked_response = client.post("/api/v1/teams/acme/invitations/", {"role": "viewer"}, format="json")
    assert client.delete(f"/api/v1/teams/acme/invitations/{revoked_response.json()['id']}/").status_code == 204
    user = UserFactory(username="late")
    for secret, status in [(expired, "expired"), (_secret_from(revoked_response), "revoked")]:
        response = api_as(user).post("/api/v1/invitations/accept/", {"token": secret}, format="json")
        assert response.status_code == 409
        assert status in response.json()["error"]["message"]
    assert not Membership.all_teams.filter(user=user).exists()
    bogus = api_as(user).post("/api/v1/invitations/accept/", {"token": "nope"}, format="json")
    assert bogus.status_code == 404 and bogus.json()["error"]["code"] == "invitation_invalid"


def test_existing_member_cannot_accept_again(api_as, team, members):
    secret = _secret_from(
        api_as(members["admin"]).post("/api/v1/teams/acme/invitations/", {"role": "admin"}, format="json")
    )
    response = api_as(members["viewer"]).post("/api/v1/invitations/accept/", {"token": secret}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_member"
    assert Membership.all_teams.get(user=members["viewer"]).role == "viewer"


def test_admin_cannot_invite_owners(api_as, members):
    response = api_as(members["admin"]).post("/api/v1/teams/acme/invitations/", {"role": "owner"}, format="json")
    assert response.status_code == 403


def test_team_rename_and_delete_are_audited_or_logged(api_as, team, members):
    assert (
        api_as(members["admin"]).patch("/api/v1/teams/acme/", {"name": "Acme Labs"}, format="json").status_code == 200
    )
    [event] = _audit(team, "team.update")
    assert event.details == {"name": {"from": "Acme ML", "to": "Acme Labs"}}
    assert api_as(members["owner"]).delete("/api/v1/teams/acme/").status_code == 204
    assert not Team.objects.filter(slug="acme").exists()
    assert not Membership.all_teams.filter(team_id=team.id).exists()


def test_quota_update_is_audited_and_validated(api_as, team):
    staff = UserFactory(username="ops", is_staff=True)
    client = api_as(staff)
    bad = client.patch("/api/v1/teams/acme/quotas/", {"max_concurrent_cpu_tasks": -1}, format="json")
    assert bad.status_code == 400 and "max_concurrent_cpu_tasks" in bad.json()["error"]["detail"]
    ok = client.patch("/api/v1/teams/acme/quotas/", {"gpu_hours_per_month": "12.5"}, format="json")
    assert ok.status_code == 200 and ok.json()["gpu_hours_per_month"] == "12.50"
    [event] = _audit(team, "quota.update")
    assert event.details == {"gpu_hours_per_month": {"from": "100.00", "to": "12.50"}}


def test_audit_filters(api_as, team, members):
    admin = api_as(members["admin"])
    admin.patch("/api/v1/teams/acme/members/viewer-user/", {"role": "editor"}, format="json")
    api_as(members["editor"]).post("/api/v1/teams/acme/tokens/", {"name": "ci"}, format="json")
    by_actor = admin.get("/api/v1/teams/acme/audit-events/", {"actor": "editor-user"}).json()["results"]
    assert [e["verb"] for e in by_actor] == ["token.create"]
    by_verb = admin.get("/api/v1/teams/acme/audit-events/", {"verb": "member.role_change"}).json()["results"]
    assert [e["actor"] for e in by_verb] == ["admin-user"]
    by_prefix = admin.get("/api/v1/teams/acme/audit-events/", {"verb": "member."}).json()["results"]
    assert len(by_prefix) == 1
    today = timezone.now().date()
    future = admin.get("/api/v1/teams/acme/audit-events/", {"since": str(today + timedelta(days=1))}).json()
    assert future["count"] == 0
    assert admin.get("/api/v1/teams/acme/audit-events/", {"until": str(today)}).json()["count"] == 2
    bad = admin.get("/api/v1/teams/acme/audit-events/", {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()["error"]["detail"]


def test_audit_of_another_team_is_invisible(api_as, team, other_team, members, outsider):
    api_as(outsider).patch("/api/v1/teams/rival/", {"name": "Rival 2"}, format="json")
    events = api_as(members["admin"]).get("/api/v1/teams/acme/audit-events/").json()["results"]
    assert all(e["target"] != "rival" for e in events)


def test_member_list_query_count_is_constant(api_as, team, members, django_assert_max_num_queries):
    for i in range(10):
        add_member(team, UserFactory(username=f"extra{i}"), "viewer")
    client = api_as(members["viewer"])
    with django_assert_max_num_queries(8):
        response = client.get("/api/v1/teams/acme/members/")
    assert response.json()["count"] == 14
