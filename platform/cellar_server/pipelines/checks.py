"""A start-up check: a malformed CELLAR_POOLS is reported at once, not at the first promote."""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from cellar_server.pipelines.pools import parse_pools, pools_override


@checks.register()
def pools_configured(app_configs, **kwargs) -> list[checks.CheckMessage]:
    try:
        parse_pools(pools_override())  # the setting only: checks run before the database is migrated
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="Fix or unset the CELLAR_POOLS variable.", id="cellar.E010")]
    return []
