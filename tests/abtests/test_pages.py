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


def test_arms_show_version_names_linking_to_the_version_page(client, members, make_test):
    test = make_test()
    client.force_login(members["viewer"])
    body = client.get(f"/t/acme/ab-tests/{test.pk}/").content.decode()
    assert 'href="/t/acme/models/ranker/versions/2/"' in body and ">ranker v2</a>" in body
    assert 'data-testid="arm-version-control"' in body
    assert "<code>" + test.arms.get(key="b").version_id + "</code>" not in body  # no raw id chip


def test_a_promoted_test_shows_who_promoted_what_and_no_buttons(client, members, make_test):
    from cellar_server.abtests.services import abtest_promote
    from cellar_server.teams.actors import Actor

    test = make_test()
    abtest_promote(test=test, actor=Actor(user=members["owner"]), arm_key="b", reason="ship it for the launch")
    client.force_login(members["admin"])
    body = client.get(f"/t/acme/ab-tests/{test.pk}/").content.decode()
    assert "Promoted: b (" in body and ">ranker v2</a>) is the champion and serves 100%" in body
    assert f"Promoted by <strong>{members['owner'].username}</strong>" in body
    assert "ship it for the launch" in body and "It was not ready" in body
    assert 'data-testid="promote"' not in body and 'data-testid="stop"' not in body
    assert "Ready to promote" not in body


def test_a_stopped_test_says_who_stopped_it_and_its_last_decision(client, members, make_test):
    test = make_test()
    client.force_login(members["admin"])
    client.post(f"/t/acme/ab-tests/{test.pk}/stop/", {"reason": "budget ran out"})
    body = client.get(f"/t/acme/ab-tests/{test.pk}/").content.decode()
    assert "Stopped without a winner" in body and f"Stopped by <strong>{members['admin'].username}</strong>" in body
    assert "budget ran out" in body and "Last decision: <strong>Collecting data</strong>" in body
    assert 'data-testid="promote"' not in body


def test_the_list_names_each_arm_by_its_model_version(client, members, make_test):
    test = make_test()
    client.force_login(members["viewer"])
    body = client.get("/t/acme/ab-tests/").content.decode()
    assert "control · ranker v1 · 50%" in body and "b · ranker v2 · 50%" in body
    assert f"b · v{test.arms.get(key='b').version_id} ·" not in body  # an id is not a version number
