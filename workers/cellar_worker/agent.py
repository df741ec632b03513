"""The pool agent's task: `cellar.pool.run_batch`, one Batch (wire.py) per broker message.

Reliability comes from the engine's leases, not from the broker: the message is acknowledged
late (after the batch) and rejected back to the queue if the worker is lost, prefetch is 1,
and whatever the broker delivers twice is refused at claim (batches.py). The agent holds the
broker connection only; user code runs in executor processes that hold neither the broker
nor the database (executors.py).

One `Agent` per worker process, built on the first batch: the warm executors, the heartbeat
thread and an engine client per API URL, shared by the worker's threads (the Celery pool is
`threads`: the agent only waits on executors and HTTP, and one process lets every batch of a
team reuse that team's warm executors).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from cellar.artifacts import store_from_url
from cellar.pipelines.wire import Batch
from cellar_worker import config
from cellar_worker.app import app
from cellar_worker.batches import BatchRun
from cellar_worker.engine_client import EngineClient
from cellar_worker.executors import ExecutorPool, executor_environment
from cellar_worker.heartbeats import Heartbeats
from cellar_worker.worker_status import WorkerReporter

logger = logging.getLogger(__name__)


class Agent:
    def __init__(
        self,
        *,
        pool: str,
        default_api_url: str,
        artifact_store_url: str,
        heartbeat_interval: float = 5.0,
        idle_seconds: float = 600.0,
        max_idle: int = 8,
        timeout_grace: float = 5.0,
        env_pass: list[str] | None = None,
        worker: str | None = None,
        devices: list[str] | None = None,
        gpu_fallback: bool = False,
    ):
        self.pool = pool
        self.worker = worker or worker_id(pool, gpu_fallback=gpu_fallback)
        self.default_api_url = default_api_url.rstrip("/")
        self.store = store_from_url(artifact_store_url)
        self.timeout_grace = timeout_grace
        env = executor_environment(artifact_store_url=artifact_store_url, extra=env_pass or [])
        self.executors = ExecutorPool(
            env=env, idle_seconds=idle_seconds, max_idle=max_idle, devices=devices, gpu_fallback=gpu_fallback
        )
        self._clients: dict[str, EngineClient] = {}
        self._lock = threading.Lock()
        self.heartbeats = Heartbeats(client_for=self.client, interval=heartbeat_interval)
        self.executors.start_reaper()
        self.heartbeats.start()

    @classmethod
    def from_environment(cls) -> Agent:
        devices, fallback = config.worker_gpus()
        return cls(
            devices=devices,
            gpu_fallback=fallback,
            pool=os.environ.get("CELLAR_POOL", "cpu"),
            default_api_url=config.api_url(),
            artifact_store_url=config.artifact_store_url(),
            heartbeat_interval=config.heartbeat_interval(),
            idle_seconds=config.executor_idle_seconds(),
            max_idle=config.executor_max_idle(),
            timeout_grace=config.timeout_grace(),
            env_pass=config.executor_env_pass(),
        )

    def client(self, api_url: str) -> EngineClient:
        with self._lock:
            client = self._clients.get(api_url)
            if client is None:
                client = self._clients[api_url] = EngineClient(api_url, worker=self.worker)
            return client

    def run_batch(self, batch: Batch) -> dict[str, int]:
        api_url = (batch.api_url or self.default_api_url).rstrip("/")
        run = BatchRun(
            batch,
            api_url=api_url,
            client=self.client(api_url),
            executors=self.executors,
            heartbeats=self.heartbeats,
            store=self.store,
            timeout_grace=self.timeout_grace,
        )
        return run.run()

    def close(self) -> None:
        self.heartbeats.stop()
        self.executors.close()
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()


FALLBACK_SUFFIX = "+cpu-fallback"


def worker_id(pool: str, *, gpu_fallback: bool = False) -> str:
    """The agent's name: task attempts record it, and its status reports carry it. A GPU pool's
    agent running on the CPU says so in its name, so every task it ran shows it wherever the
    task's worker is shown (run pages, the API), with no extra query or field."""
    return f"{pool}@{socket.gethostname()}:{os.getpid()}" + (FALLBACK_SUFFIX if gpu_fallback else "")


_agent: Agent | None = None
_agent_lock = threading.Lock()
_reporter: WorkerReporter | None = None


def current_agent() -> Agent:
    global _agent
    with _agent_lock:
        if _agent is None:
            _agent = Agent.from_environment()
        return _agent


def _tasks_held() -> int:
    return len(_agent.heartbeats.held()) if _agent is not None else 0


@worker_ready.connect
def _start_reporting(**_: Any) -> None:
    """Report this agent's status to the compute app (worker_status.py) once it consumes."""
    global _reporter
    token = config.worker_token()
    if not token:
        logger.info("CELLAR_WORKER_TOKEN is not set: this agent does not report its status")
        return
    pool = os.environ.get("CELLAR_POOL", "cpu")
    devices, fallback = config.worker_gpus()
    _reporter = WorkerReporter(
        api_url=config.api_url(),
        token=token,
        worker=worker_id(pool, gpu_fallback=fallback),
        pool=pool,
        concurrency=int(os.environ.get("CELLAR_WORKER_CONCURRENCY", "1")),
        current_tasks=_tasks_held,
        devices=devices,
        gpu_fallback=fallback,
        interval=config.report_interval(),
    )
    _reporter.start()


@worker_shutting_down.connect
def _draining(**_: Any) -> None:
    # SIGTERM (warm shutdown): Celery stops consuming and finishes the batches it runs.
    if _reporter is not None:
        threading.Thread(target=_reporter.draining, daemon=True).start()


@worker_shutdown.connect
def _close_agent(**_: Any) -> None:
    # Executors would notice the agent is gone and exit; stopping them here is simply sooner.
    if _agent is not None:
        _agent.close()
    if _reporter is not None:
        _reporter.stop()


@app.task(name="cellar.pool.run_batch", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_batch(payload: dict[str, Any]) -> dict[str, int]:
    try:
        batch = Batch.from_dict(payload)
    except (TypeError, ValueError, KeyError) as exc:
        # Acknowledged and dropped: redelivering a message this agent cannot read would loop. The
        # engine re-dispatches its tasks once their claim grace has passed.
        logger.error("dropping a batch this agent cannot read: %s", exc)
        return {"claimed": 0, "refused": len(payload.get("tasks") or []) if isinstance(payload, dict) else 0}
    summary = current_agent().run_batch(batch)
    logger.info("batch of run %s, step %s: %s", batch.run, batch.step.get("name"), summary)
    return summary
