"""Task tokens as seen from the APIs a step calls while it runs (tracking, REST).

The engine (pipelines app) signs a token per task attempt and hands it to the step's code;
the tracking API lets it log to that one run. The resolver is named in settings
(CELLAR_TASK_TOKEN_RESOLVER) rather than imported, so teams and tracking do not depend on
the pipelines app (which depends on them): ARCHITECTURE.md, "Dependency direction" between apps.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class TaskGrant(Protocol):
    team_id: int
    run_id: int
    task_id: int
    tracking_run: str


@lru_cache(maxsize=4)
def _resolver(path: str):
    return import_string(path)


def task_grant(secret: str) -> Any | None:
    """The grant of a live task token (its attempt still in flight), else None."""
    path = getattr(settings, "CELLAR_TASK_TOKEN_RESOLVER", "")
    if not path or not secret:
        return None
    return _resolver(path)(secret)
