"""The SDK's token-file source: kernels in a workspace find their token and follow its renewals."""

from __future__ import annotations

import json
import os

import pytest

from cellar import token_file
from cellar.client import Client
from cellar.tracking.errors import ConfigurationError
from cellar.tracking.session import Transport, login


@pytest.fixture
def token_path(tmp_path, monkeypatch):
    monkeypatch.delenv("CELLAR_TOKEN", raising=False)
    monkeypatch.delenv("CELLAR_TEAM", raising=False)
    monkeypatch.delenv("CELLAR_URL", raising=False)
    path = tmp_path / "token.json"
    monkeypatch.setenv("CELLAR_TOKEN_FILE", str(path))
    return path


def write(path, tokens, team="", url="http://cellar.test"):
    path.write_text(json.dumps({"url": url, "tokens": tokens, "team": team}))
    # A renewal within the same clock tick must still be seen: move the modification time on.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_without_the_variable_nothing_changes(monkeypatch):
    monkeypatch.delenv("CELLAR_TOKEN_FILE", raising=False)
    assert token_file.read() is None and token_file.token_for("ml") is None


def test_single_team_file_gives_the_client_its_url_and_token(token_path):
    write(token_path, {"ml": "cellar_aaaaaaaaaaaa_1"})
    client = Client()
    assert client.url == "http://cellar.test" and client.token == "cellar_aaaaaaaaaaaa_1"


def test_cellar_token_and_cellar_team_win(token_path, monkeypatch):
    write(token_path, {"ml": "tok-ml", "ops": "tok-ops"})
    assert token_file.token_for() is None  # two teams and no default: the caller must choose
    monkeypatch.setenv("CELLAR_TEAM", "ops")
    assert Client().token == "tok-ops"
    monkeypatch.setenv("CELLAR_TOKEN", "explicit")
    assert Client().token == "explicit"


def test_login_with_several_teams_asks_for_one(token_path):
    write(token_path, {"ml": "tok-ml", "ops": "tok-ops"})
    with pytest.raises(ConfigurationError, match="CELLAR_TEAM"):
        login()


def test_a_running_kernel_follows_the_renewed_token(token_path):
    write(token_path, {"ml": "old"})
    transport = Transport("http://cellar.test", "old", "ml")
    transport.token_from_file = True
    assert transport._session().headers["Authorization"] == "Bearer old"
    write(token_path, {"ml": "new"})
    assert transport._session().headers["Authorization"] == "Bearer new"


def test_a_token_given_explicitly_is_never_replaced(token_path):
    write(token_path, {"ml": "from-file"})
    transport = Transport("http://cellar.test", "explicit", "ml")
    assert transport._session().headers["Authorization"] == "Bearer explicit"
