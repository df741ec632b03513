"""The pool agent's settings: environment variables with safe local defaults (no Django here).

| Variable                         | Default                       | What it sets                                   |
| -------------------------------- | ----------------------------- | ---------------------------------------------- |
| CELLAR_BROKER_URL / REDIS_URL    | (required)                    | the broker; the agent alone holds it           |
| CELLAR_API_URL                   | http://127.0.0.1:8000         | the engine API, when a batch does not name one |
| ARTIFACT_STORE_URL               | file://$CELLAR_HOME/artifacts | the artifact store (CELLAR_HOME default ./var) |
| CELLAR_BROKER_VISIBILITY_TIMEOUT | 3600 s                        | Redis redelivery of unacked messages           |
| CELLAR_HEARTBEAT_S               | 5 s                           | how often leases in flight are renewed         |
| CELLAR_EXECUTOR_IDLE_S           | 600 s                         | an idle executor process is stopped after this |
| CELLAR_EXECUTOR_MAX_IDLE         | 8                             | idle executors kept at most (oldest go first)  |
| CELLAR_TIMEOUT_GRACE_S           | 5 s                           | past a step's timeout, the executor is killed  |
| CELLAR_EXECUTOR_ENV_PASS         | (none)                        | extra variable names executors may see         |
| CELLAR_WORKER_TOKEN              | (none: no status reports)     | the worker credential for status reports       |
| CELLAR_WORKER_REPORT_S           | 5 s                           | how often the agent reports its status         |
| CELLAR_WORKER_GPUS               | (none)                        | GPU indexes, one executor each; `fallback`: a  |
|                                  |                               | GPU pool on the CPU; `auto`: from nvidia-smi   |
| CELLAR_GPU_FALLBACK              | 0                             | `auto` finding no GPU runs on the CPU          |
"""

from __future__ import annotations

import os
from pathlib import Path


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def cellar_home() -> Path:
    # The server resolves a relative CELLAR_HOME against its repository; the agent has no
    # repository, so against its working directory (where `make up` starts every process).
    return Path(os.environ.get("CELLAR_HOME", "var")).absolute()


def artifact_store_url() -> str:
    """The same rule as the server's: ARTIFACT_STORE_URL, else a folder under CELLAR_HOME."""
    return os.environ.get("ARTIFACT_STORE_URL") or f"file://{cellar_home() / 'artifacts'}"


def api_url() -> str:
    return (os.environ.get("CELLAR_API_URL") or "http://127.0.0.1:8000").rstrip("/")


def visibility_timeout() -> float:
    """Seconds before Redis hands an unacknowledged message to another consumer.

    Keep it longer than the engine's claim grace (CELLAR_ENGINE_CLAIM_GRACE, 120 s by default): a
    message an agent took and lost before claiming is re-dispatched by the reconciler once
    the grace has passed, and the broker's copy arriving later is then refused as stale.
    It never decides what runs: a redelivered message whose lease is held by a live agent
    is refused at claim and dropped, so a step longer than this is not run twice.
    """
    return _float("CELLAR_BROKER_VISIBILITY_TIMEOUT", 3600.0)


def heartbeat_interval() -> float:
    return _float("CELLAR_HEARTBEAT_S", 5.0)


def executor_idle_seconds() -> float:
    return _float("CELLAR_EXECUTOR_IDLE_S", 600.0)


def executor_max_idle() -> int:
    return int(_float("CELLAR_EXECUTOR_MAX_IDLE", 8))


def timeout_grace() -> float:
    return _float("CELLAR_TIMEOUT_GRACE_S", 5.0)


def executor_env_pass() -> list[str]:
    return [name.strip() for name in os.environ.get("CELLAR_EXECUTOR_ENV_PASS", "").split(",") if name.strip()]


def worker_token() -> str:
    return os.environ.get("CELLAR_WORKER_TOKEN", "")


def report_interval() -> float:
    return _float("CELLAR_WORKER_REPORT_S", 5.0)


def gpu_fallback_allowed() -> bool:
    return os.environ.get("CELLAR_GPU_FALLBACK", "").strip().lower() in {"1", "true", "yes", "on"}


FALLBACK = "fallback"


def worker_gpus() -> tuple[list[str], bool]:
    """(GPU devices for this agent's executors, whether it is a GPU pool running on the CPU).

    CELLAR_WORKER_GPUS: empty (a CPU pool), `0,1` (these devices, one executor each), `fallback`,
    or `auto` (every GPU nvidia-smi lists; none -> fallback when CELLAR_GPU_FALLBACK=1, else an error).
    """
    raw = os.environ.get("CELLAR_WORKER_GPUS", "").strip()
    if not raw:
        return [], False
    if raw == FALLBACK:
        return [], True
    if raw == "auto":
        from cellar_worker.worker_status import nvidia_gpus

        found = [str(gpu["index"]) for gpu in nvidia_gpus()]
        if found:
            return found, False
        if gpu_fallback_allowed():
            return [], True
        raise SystemExit(
            "cellar-worker: no GPU found (nvidia-smi); set CELLAR_GPU_FALLBACK=1 to run this GPU pool on the CPU"
        )
    return [d.strip() for d in raw.split(",") if d.strip()], False
