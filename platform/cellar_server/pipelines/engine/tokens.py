"""Per-task tokens: what a pool agent (and, later, the step's own code) shows to act for one task.

A token is signed by the server (django.core.signing, its own salt) and carries {team, run,
task, lease}: verifying it needs no database lookup, and it authorizes only that task's claims,
heartbeats and results. The worker treats it as opaque. The lease inside it fences it: once the
task has a new attempt, the old token still verifies as a signature but names a stale lease,
which the engine refuses.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.models import Task

SALT = "cellar.pipelines.engine.task-token"


class TokenInvalid(ServiceError):
    """The token is not one this server signed, or it is for another task or lease."""

    def __init__(self, message: str):
        super().__init__("task_token_invalid", message, status_code=403)


def task_token(task: Task) -> str:
    """The token for the task's current lease (issue it after the lease is set)."""
    payload = {"team": task.team_id, "run": task.run_id, "task": task.pk, "lease": task.lease}
    return signing.dumps(payload, salt=SALT, compress=False)


def token_verify(token: str, *, task_id: int, lease: str) -> dict[str, Any]:
    """The token's payload if it was signed here for exactly this task and lease; raises TokenInvalid."""
    if not isinstance(token, str) or not token:
        raise TokenInvalid("No task token: send the token that came with the task in its batch.")
    try:
        payload = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        raise TokenInvalid("This task token was not issued by this server (or was altered).") from None
    if not isinstance(payload, dict) or payload.get("task") != task_id:
        raise TokenInvalid(f"This task token is for another task, not task {task_id}.")
    if payload.get("lease") != lease:
        raise TokenInvalid(f"This task token is for another lease of task {task_id}.")
    return payload
