"""System checks that catch a production deployment still on local defaults."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


def secret_key_warnings(*, database_engine: str, key_from_env: bool) -> list[checks.CheckMessage]:
    if database_engine.endswith("sqlite3") or key_from_env:
        return []  # the embedded single-machine mode may use the derived local key
    return [
        checks.Warning(
            "CELLAR_SECRET_KEY is not set while running on an external database.",
            hint="Set CELLAR_SECRET_KEY to a long random value shared by every web and control process.",
            id="cellar.W001",
        )
    ]


@checks.register(checks.Tags.security)
def secret_key_set_outside_the_embedded_mode(app_configs, **kwargs) -> list[checks.CheckMessage]:
    return secret_key_warnings(
        database_engine=settings.DATABASES["default"]["ENGINE"], key_from_env=settings.SECRET_KEY_FROM_ENV
    )
