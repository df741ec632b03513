"""Page views: who sees what, who may press which button (the browser tests look at the pages)."""

import pytest

from cellar_server.abtests.models import ABTest


@pytest.mark.parametrize("role", ["viewer", "editor", "admin", "owner"])
def test_every_role_sees_the_list_and_results(client, members, make_test, role):
    test = make_test()
    client.force_login(members[role])
    assert client.get("/t/acme/ab-tests/").status_code == 200
    page = client.get(f"/t/acme/ab-tests/{test.pk}/")
    assert page.status_code == 200
    assert (b'data-testid="promote"' in page.content) is (role in ("admin", "owner"))


def test_another_team_gets_404(client, outsider, make_test):
    test = make_test()
    client.force_login(outsider)
    assert client.get("/t/acme/ab-tests/").status_code == 404
    assert client.get(f"/t/acme/ab-tests/{test.pk}/").status_code == 404
    assert client.post(f"/t/acme/ab-tests/{test.pk}/stop/").status_code == 404


def test_buttons_need_abtests_write(client, members, make_test):
    test = make_test()
    client.force_login(members["editor"])
    assert client.post(f"/t/acme/ab-tests/{test.pk}/stop/").status_code == 403
    assert client.post(f"/t/acme/ab-tests/{test.pk}/refresh/").status_code == 302  # reading is enough
    client.force_login(members["admin"])
    r = client.post(f"/t/acme/ab-tests/{test.pk}/promote/", {"arm": "b"})
    assert r.status_code == 302 and ABTest.all_teams.get(pk=test.pk).status == "running"  # no reason: refused
    r = client.post(f"/t/acme/ab-tests/{test.pk}/extend/", {"days": "3"})
    assert r.status_code == 302
    client.post(f"/t/acme/ab-tests/{test.pk}/stop/")
    assert ABTest.all_teams.get(pk=test.pk).status == "stopped"
