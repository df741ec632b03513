"""Per-task tokens: what a pool agent (and, later, the step's own code) shows to act for one task.

A token is signed by the server (django.core.signing, its own salt) and carries {team, run,
task, lease}: verifying it needs no database lookup, and it authorizes only that task's claims,
heartbeats and results. The worker treats it as opaque. The lease inside it fences it: once the
task has a new attempt, the old token still verifies as a signature but names a stale lease,
which the engine refuses.

`task_token_grant` is for the APIs a step itself calls with its token (the executor hands it to
the step as CELLAR_TOKEN so `cellar.log_metric` reaches the run's tracking run): it holds only
while the attempt is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.core import signing

from cellar_server.core.exceptions import ServiceError
from cellar_server.pipelines.models import TASK_IN_FLIGHT, Task

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
        payload = _signed_payload(token)
    except signing.BadSignature:
        raise TokenInvalid("This task token was not issued by this server (or was altered).") from None
    if not isinstance(payload, dict) or payload.get("task") != task_id:
        raise TokenInvalid(f"This task token is for another task, not task {task_id}.")
    if payload.get("lease") != lease:
        raise TokenInvalid(f"This task token is for another lease of task {task_id}.")
    return payload


@lru_cache(maxsize=32_768)
def _signed_payload(token: str) -> Any:
    """The payload of a token signed here. A task's token is checked at its claim, at every
    heartbeat while it is held and with its result; the signature of a given string never
    changes, so each process checks it once (a bad one raises and is not kept). Callers must
    not mutate the payload."""
    return signing.loads(token, salt=SALT)


@dataclass(frozen=True)
class TaskGrant:
    """What a step's own code may do with its task token: log to its run's tracking run."""

    team_id: int
    run_id: int
    task_id: int
    tracking_run: str


def task_token_grant(token: str) -> TaskGrant | None:
    """For APIs a step calls while it runs (tracking): the grant of a task token whose attempt is
    still in flight, else None. Unlike the engine API this needs the database: a finished or
    requeued attempt's token must stop working."""
    try:
        payload = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("task"), int):
        return None
    row = (
        Task.all_teams.filter(pk=payload["task"], lease=payload.get("lease"), state__in=sorted(TASK_IN_FLIGHT))
        .values_list("team_id", "run_id", "run__tracking_run")
        .first()
    )
    if row is None or row[0] != payload.get("team"):
        return None
    return TaskGrant(team_id=row[0], run_id=row[1], task_id=payload["task"], tracking_run=row[2])
