"""The `cellar` SDK and CLI against a live server."""

from __future__ import annotations

import pytest

from cellar import CellarAPIError, Client
from cellar.cli import main as cli_main
from tests.factories import mint_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(team, members):
    return mint_token(team, members["admin"], scopes=["team:read", "members:read", "audit:read"])[1]


def test_client_reads_team_data(live_server, token):
    client = Client(live_server.url, token)
    me = client.whoami()
    assert me["username"] == "admin-user" and me["token"]["scopes"] == ["audit:read", "members:read", "team:read"]
    assert [t["slug"] for t in client.teams()] == ["acme"]
    assert {m["username"] for m in client.members("acme")} == {"viewer-user", "editor-user", "admin-user", "owner-user"}


def test_client_raises_the_api_error(live_server, token):
    client = Client(live_server.url, token)
    with pytest.raises(CellarAPIError) as caught:
        client.post("teams/acme/invitations/", {"role": "viewer"})
    assert caught.value.status == 403 and caught.value.code == "missing_scope"
    with pytest.raises(CellarAPIError) as caught:
        Client(live_server.url, "cellar_000000000000_x").whoami()
    assert caught.value.code == "token_invalid"


def test_client_uses_environment(live_server, token, monkeypatch):
    monkeypatch.setenv("CELLAR_URL", live_server.url)
    monkeypatch.setenv("CELLAR_TOKEN", token)
    assert Client().whoami()["username"] == "admin-user"


def test_cli_prints_json_and_errors(live_server, token, capsys):
    assert cli_main(["--url", live_server.url, "--token", token, "members", "acme"]) == 0
    assert '"username": "owner-user"' in capsys.readouterr().out
    assert cli_main(["--url", live_server.url, "--token", "bad", "whoami"]) == 1
    assert "token_invalid" in capsys.readouterr().err
    assert cli_main(["--url", "http://127.0.0.1:9", "--token", token, "whoami"]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_paginate_follows_every_page(live_server, token):
    client = Client(live_server.url, token)
    usernames = [m["username"] for m in client.paginate("teams/acme/members/", page_size=3)]
    assert sorted(usernames) == ["admin-user", "editor-user", "owner-user", "viewer-user"]
