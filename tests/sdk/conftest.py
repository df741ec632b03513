"""Fixtures for the SDK's tracking tests: a clean tracking state and a token for the live server."""

from __future__ import annotations

import pytest

from cellar.tracking import run as runs
from cellar.tracking import session as sessions
from tests.factories import mint_token

TRACKING_VARS = [
    "CELLAR_URL",
    "CELLAR_TOKEN",
    "CELLAR_TEAM",
    "CELLAR_RUN_ID",
    "CELLAR_OFFLINE",
    "CELLAR_OFFLINE_DIR",
    "CELLAR_EXPERIMENT",
    "CELLAR_FLUSH_TIMEOUT",
    "CELLAR_MAX_QUEUE",
    "JPY_SESSION_NAME",
]


def _reset() -> None:
    run = runs._active
    if run is not None:
        run._end("KILLED", raise_errors=False)
    runs._active = None
    sessions.logout()


@pytest.fixture
def tracking_state(tmp_path, monkeypatch):
    """No session, no active run, no tracking variables; offline runs go to tmp_path/offline."""
    for name in TRACKING_VARS:
        monkeypatch.delenv(name, raising=False)
    offline = tmp_path / "offline"
    monkeypatch.setenv("CELLAR_OFFLINE_DIR", str(offline))
    _reset()
    yield offline
    _reset()


@pytest.fixture
def editor_token(team, members):
    return mint_token(team, members["editor"])[1]


@pytest.fixture
def tracking(live_server, editor_token, tracking_state, monkeypatch, settings, tmp_path):
    """CELLAR_URL / CELLAR_TOKEN pointing at the live server as acme's editor; artifacts in tmp_path."""
    settings.ARTIFACT_STORE_URL = f"file://{tmp_path / 'artifact-store'}"
    monkeypatch.setenv("CELLAR_URL", live_server.url)
    monkeypatch.setenv("CELLAR_TOKEN", editor_token)
    return tracking_state
