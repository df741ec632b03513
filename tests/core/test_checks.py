"""Start-up checks that catch a production deployment still on local defaults."""

from __future__ import annotations

import pytest

from cellar_server.core.checks import secret_key_warnings

POSTGRES = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"


def test_warns_without_a_secret_key_on_an_external_database():
    [warning] = secret_key_warnings(database_engine=POSTGRES, key_from_env=False)
    assert warning.id == "cellar.W001" and "CELLAR_SECRET_KEY" in warning.hint


@pytest.mark.parametrize("engine,from_env", [(POSTGRES, True), (SQLITE, False), (SQLITE, True)])
def test_quiet_when_the_key_is_set_or_embedded(engine, from_env):
    assert secret_key_warnings(database_engine=engine, key_from_env=from_env) == []
