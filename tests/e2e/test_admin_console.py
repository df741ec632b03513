"""The team admin console in a real browser: sign in, teams, members, tokens, quotas, audit log."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from cellar_server.teams.models import ApiToken, AuditEvent, Invitation, Membership, Team
from tests.e2e.conftest import sign_in, snap, visit
from tests.factories import TeamFactory, UserFactory, add_member, mint_token

pytestmark = pytest.mark.e2e


# --- helpers ----------------------------------------------------------------------------------------------


def create_team(page: Page, slug: str, name: str) -> None:
    form = page.get_by_test_id("create-team-form")
    form.get_by_label("Slug").fill(slug)
    form.get_by_label("Name").fill(name)
    form.get_by_role("button", name="Create team").click()
    expect(page).to_have_url(re.compile(rf"/t/{slug}/admin/members/$"))


def invite(page: Page, slug: str, role: str, email: str = "") -> str:
    """Create an invitation through the members page; returns the link it shows."""
    if not page.url.endswith(f"/t/{slug}/admin/members/"):
        page.goto(f"/t/{slug}/admin/members/")
    form = page.get_by_test_id("invite-form")
    form.get_by_label("Role").select_option(role)
    form.get_by_label("Email").fill(email)
    form.get_by_role("button", name="Create invitation link").click()
    expect(page.get_by_test_id("invitation-link")).to_be_visible()
    return page.locator("#invite-link").input_value()


def mint(page: Page, slug: str, name: str, scopes: list[str], expires: str = "30") -> str:
    """Mint a token through the tokens page; returns the raw secret it shows once."""
    page.goto(f"/t/{slug}/admin/tokens/")
    form = page.get_by_test_id("token-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Expires").select_option(expires)
    for scope in scopes:
        form.locator(f"input[name=scopes][value='{scope}']").check()
    form.get_by_role("button", name="Mint token").click()
    expect(page.get_by_test_id("new-token")).to_be_visible()
    return page.locator("#new-token-value").input_value()


def audit_rows(page: Page):
    return page.get_by_test_id("audit-table").locator("tbody tr")


def assert_day_ticks(page: Page) -> None:
    """The activity chart labels whole days, not hours or milliseconds."""
    ticks = page.locator("#audit-chart .xtick text").all_text_contents()
    assert ticks and not any(":" in tick for tick in ticks), ticks


def api_get(live_server, path: str, raw_token: str) -> requests.Response:
    return requests.get(f"{live_server.url}{path}", headers={"Authorization": f"Bearer {raw_token}"}, timeout=10)


# --- tests ------------------------------------------------------------------------------------------------


def test_sign_in_create_team_invite_mint_token_and_read_the_audit_log(page, live_server):
    alice = UserFactory(username="alice")

    sign_in(page, "alice", shots="journey-01")
    expect(page).to_have_url(re.compile(r"/teams/$"))

    create_team(page, "vision", "Vision Lab")
    snap(page, "journey-02-members-after-create")
    expect(page.get_by_role("status")).to_contain_text("Team created")
    alice_row = page.get_by_test_id("member-table").locator("tr[data-member=alice]")
    expect(alice_row.get_by_label("Role of alice")).to_have_value("owner")
    team = Team.objects.get(slug="vision")
    assert team.name == "Vision Lab"
    assert Membership.all_teams.get(team=team, user=alice).role == "owner"

    link = invite(page, "vision", "editor", email="bob@example.com")
    snap(page, "journey-03-invitation-link")
    assert re.fullmatch(rf"{re.escape(live_server.url)}/invitations/[^/]+/", link), link
    invitation = Invitation.all_teams.get(team=team)
    assert (invitation.role, invitation.email, invitation.status) == ("editor", "bob@example.com", "pending")

    raw = mint(page, "vision", "ci-training", scopes=["members:read", "team:read"])
    snap(page, "journey-04-token-minted")
    assert raw.startswith("cellar_")
    row = page.get_by_test_id("token-table").locator("tr[data-token=ci-training]")
    expect(row.locator(".status")).to_have_text("active")
    token = ApiToken.all_teams.get(team=team, name="ci-training")
    assert token.user == alice and token.scopes == ["members:read", "team:read"]
    assert raw.startswith(f"cellar_{token.prefix}_")

    visit(page, "/t/vision/admin/tokens/", "journey-05-tokens-opened-again")
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(raw)
    expect(page.get_by_test_id("token-table").locator("tr[data-token=ci-training]")).to_be_visible()

    visit(page, "/t/vision/admin/audit/", "journey-06-audit-log", ready="#audit-chart[data-rendered=true]")
    expect(page.locator("#audit-chart .bars .point")).to_have_count(1)  # one day of activity, one bar
    assert_day_ticks(page)
    verbs = audit_rows(page).locator("td:nth-child(3)")
    expect(verbs).to_contain_text(["token.create", "invitation.create", "team.create"])

    response = api_get(live_server, "/api/v1/teams/vision/members/", raw)
    assert response.status_code == 200, response.text
    assert [m["username"] for m in response.json()["results"]] == ["alice"]


def test_reloading_after_minting_neither_mints_again_nor_shows_a_secret(page, team, members):
    sign_in(page, members["owner"].username, shots="reload-01")
    mint(page, "acme", "ci-training", scopes=[])
    page.reload()
    snap(page, "reload-02-tokens-reloaded")
    assert ApiToken.all_teams.filter(team=team).count() == 1
    expect(page.get_by_test_id("new-token")).to_have_count(0)


def test_invited_user_signs_in_accepts_and_gets_a_new_role(open_page, live_server):
    alice = add_member(TeamFactory(slug="vision", name="Vision Lab"), UserFactory(username="alice"), "owner")
    bob = UserFactory(username="bob")
    owner_page, bob_page = open_page(), open_page()

    sign_in(owner_page, alice.username, shots="invite-01-alice")
    link = invite(owner_page, "vision", "viewer")
    path = link.removeprefix(live_server.url)

    sign_in(bob_page, "bob", shots="invite-02-bob", path=path)
    expect(bob_page).to_have_url(f"{live_server.url}{path}")
    snap(bob_page, "invite-03-bob-invitation")
    expect(bob_page.get_by_role("heading", name="Join Vision Lab")).to_be_visible()
    bob_page.get_by_role("button", name="Accept and join").click()
    expect(bob_page).to_have_url(re.compile(r"/t/vision/$"))
    snap(bob_page, "invite-04-bob-joined")
    expect(bob_page.get_by_role("status")).to_contain_text("Welcome to Vision Lab")
    assert Membership.all_teams.get(team__slug="vision", user=bob).role == "viewer"

    visit(owner_page, "/t/vision/admin/members/", "invite-05-members-with-bob")
    role_select = owner_page.get_by_test_id("member-table").locator("tr[data-member=bob]").get_by_label("Role of bob")
    url_before = owner_page.url
    role_select.select_option("admin")  # htmx swaps the row in place: no page load
    expect(owner_page.get_by_role("status")).to_contain_text("bob is now admin")
    snap(owner_page, "invite-06-role-changed")
    assert owner_page.url == url_before
    expect(owner_page.locator("tr[data-member=bob]").get_by_label("Role of bob")).to_have_value("admin")
    assert Membership.all_teams.get(team__slug="vision", user=bob).role == "admin"

    visit(owner_page, "/t/vision/admin/audit/", "invite-07-audit-log", ready="#audit-chart[data-rendered=true]")
    filters = owner_page.get_by_test_id("audit-filters")
    filters.locator("select[name=verb]").select_option("member.role_change")
    filters.get_by_role("button", name="Filter").click()
    expect(owner_page).to_have_url(re.compile(r"verb=member.role_change"))
    owner_page.locator("#audit-chart[data-rendered=true]").wait_for()
    snap(owner_page, "invite-08-audit-filtered")
    expect(audit_rows(owner_page)).to_have_count(1)
    expect(audit_rows(owner_page).first).to_contain_text("member.role_change")
    expect(audit_rows(owner_page).first).to_contain_text("alice")
    assert AuditEvent.all_teams.filter(team__slug="vision", verb="member.role_change").count() == 1


def test_revoking_a_token_in_the_page_makes_the_api_refuse_it(page, live_server, team, members):
    owner = members["owner"]
    token, raw = mint_token(team, owner, scopes=["members:read"])
    assert api_get(live_server, "/api/v1/teams/acme/members/", raw).status_code == 200

    sign_in(page, owner.username, shots="revoke-01")
    visit(page, "/t/acme/admin/tokens/", "revoke-02-tokens")
    page.on("dialog", lambda dialog: dialog.accept())
    row = page.get_by_test_id("token-table").locator("tr[data-token=test]")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Token 'test' revoked")
    snap(page, "revoke-03-revoked")
    expect(row.locator(".status")).to_have_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    token.refresh_from_db()
    assert token.revoked_at is not None

    response = api_get(live_server, "/api/v1/teams/acme/members/", raw)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "token_revoked"


def test_viewer_sees_quotas_read_only_and_no_audit_log(page, team, members):
    sign_in(page, members["viewer"].username, shots="viewer-01")
    visit(page, "/t/acme/admin/quotas/", "viewer-02-quotas")
    values = page.get_by_test_id("quota-values")
    expect(values).to_contain_text("Max concurrent CPU tasks")
    expect(values.locator("dd").first).to_have_text(str(team.max_concurrent_cpu_tasks))
    expect(page.get_by_test_id("quota-form")).to_have_count(0)
    expect(page.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log")).to_have_count(0)

    visit(page, "/t/acme/admin/audit/", "viewer-03-audit-forbidden", status=403)
    expect(page.get_by_role("heading", name="403")).to_be_visible()
    expect(page.get_by_test_id("audit-table")).to_have_count(0)


def test_platform_admin_edits_quotas(page, team):
    UserFactory(username="root", is_staff=True)
    sign_in(page, "root", shots="staff-01")
    visit(page, "/t/acme/admin/quotas/", "staff-02-quotas")
    expect(page.get_by_test_id("my-role")).to_have_text("a platform admin (not a member)")
    form = page.get_by_test_id("quota-form")
    form.get_by_label("Max concurrent GPU tasks").fill("7")
    form.get_by_label("GPU-hours per month").fill("120.5")
    form.get_by_role("button", name="Save quotas").click()
    expect(page.get_by_role("status")).to_contain_text("Quotas saved")
    snap(page, "staff-03-quotas-saved")
    expect(form.get_by_label("Max concurrent GPU tasks")).to_have_value("7")
    expect(form.get_by_label("GPU-hours per month")).to_have_value("120.50")
    team.refresh_from_db()
    assert team.max_concurrent_gpu_tasks == 7
    assert str(team.gpu_hours_per_month) == "120.50"


def test_member_of_another_team_gets_not_found(page, team, outsider):
    sign_in(page, outsider.username, shots="outsider-01")
    visit(page, "/t/acme/admin/members/", "outsider-02-members-not-found", status=404)
    expect(page.get_by_role("heading", name="404")).to_be_visible()
    expect(page.locator("main")).to_contain_text("belongs to a team you are not in")
    expect(page.get_by_test_id("member-table")).to_have_count(0)
    # No navigation for a team the user is not in, and the same page as for a team that does not exist.
    expect(page.get_by_test_id("current-team")).to_have_count(0)
    expect(page.get_by_role("navigation", name="Sections")).to_have_count(0)
    visit(page, "/t/no-such-team/admin/members/", "outsider-03-missing-team-not-found", status=404)
    expect(page.get_by_role("heading", name="404")).to_be_visible()


def test_new_user_sees_the_empty_state(page):
    UserFactory(username="newcomer")
    sign_in(page, "newcomer", shots="empty-01")
    expect(page).to_have_url(re.compile(r"/teams/$"))
    expect(page.get_by_role("heading", name="You are not in a team yet")).to_be_visible()
    expect(page.get_by_test_id("team-table")).to_have_count(0)
