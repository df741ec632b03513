"""Fixtures for the workspaces tests: the hub's OAuth client in a private CELLAR_HOME."""

from __future__ import annotations

import json

import pytest

from cellar_server.workspaces import services


@pytest.fixture
def hub_home(tmp_path, monkeypatch):
    """CELLAR_HOME in a temporary folder: the hub's secret files land there."""
    monkeypatch.setenv("CELLAR_HOME", str(tmp_path))
    monkeypatch.delenv("CELLAR_HUB_OAUTH_FILE", raising=False)
    return tmp_path


@pytest.fixture
def hub_client(db, hub_home):
    """The hub's OAuth client as `cellar_hub_setup` makes it: (client_id, plaintext secret, redirect_uri)."""
    client = services.hub_oauth_client_ensure(redirect_uri="http://hub.test/hub/oauth_callback")
    data = json.loads((hub_home / "hub" / "oauth-client.json").read_text())
    return client.client_id, data["client_secret"], client.redirect_uri
