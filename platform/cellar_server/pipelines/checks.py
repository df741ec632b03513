"""A start-up check: a malformed CELLAR_POOLS is reported at once, not at the first promote."""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from cellar_server.pipelines.pools import pool_offers


@checks.register()
def pools_configured(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        pool_offers()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="Fix or unset the CELLAR_POOLS variable.", id="cellar.E010")]
    return []
