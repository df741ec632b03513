"""`cellar-worker supervise`: one machine's pools, scaled on demand (docs/compute.md).

Every `interval` seconds the supervisor reads GET /api/v1/compute/pools/ (the pools, each with
its demand from the database: queued + dispatched + running tasks, and `desired_workers`,
that demand in worker slots clamped to the pool's [min_workers, max_workers]) and moves
each pool's agent processes (`cellar-worker --pool <name>`) toward it:

- **Up at once**: missing agents start in the same round.
- **Down after a cool-down**: once fewer agents have been wanted for `cooldown` seconds
  (default 15), the surplus is drained, idle agents first (their status reports say how many
  tasks they hold): a pool does not flap between the batches of a run, and a GPU pool with
  min 0 goes back to zero when idle.
- **Draining**: an agent is stopped with SIGTERM, Celery's warm shutdown. It stops taking
  messages, finishes the batches it holds (acknowledged late, after their results are
  posted), and exits; a message it had prefetched but not started goes back to the queue
  when its connection closes. Nothing is lost, and nothing runs twice: a task is claimed under
  its lease, and a redelivered message is refused at claim. A drain longer than
  `drain_timeout` ends with SIGKILL; its tasks' leases then expire and the engine re-runs them.
- **GPU pools**: each agent gets `gpus` devices of those this machine has (nvidia-smi, or
  CELLAR_SUPERVISOR_GPUS), one executor per device (CUDA_VISIBLE_DEVICES). No GPU here: with
  CELLAR_GPU_FALLBACK=1 its agents run on the CPU (and say so); without it the pool is
  not started here (a log line says why).
- The API unreachable: the agents keep running as they are; the next round tries again.

SIGTERM or SIGINT to the supervisor drains every agent, then exits. The supervisor needs the
API URL (CELLAR_API_URL) and the worker credential (CELLAR_WORKER_TOKEN); agents get the
broker from the environment, as `cellar-worker` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from cellar_worker import config

logger = logging.getLogger("cellar_worker.supervisor")


@dataclass
class AgentProcess:
    pool: str
    proc: subprocess.Popen
    devices: list[str]
    started: float = field(default_factory=time.monotonic)
    draining_since: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class PoolPlan:
    """A pool as the API describes it, and what the supervisor last decided for it."""

    name: str
    desired: int
    concurrency: int
    gpus: int
    lower_since: float | None = None


class Supervisor:
    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        pools: list[str] | None = None,
        interval: float = 2.0,
        cooldown: float = 15.0,
        drain_timeout: float = 3600.0,
        gpu_devices: list[str] | None = None,
        gpu_fallback: bool = False,
        agent_args: list[str] | None = None,
        loglevel: str = "INFO",
        log_dir: str | None = None,
    ):
        self.url = f"{api_url.rstrip('/')}/api/v1/compute/pools/"
        self.token = token
        self.only = set(pools) if pools else None
        self.interval = interval
        self.cooldown = cooldown
        self.drain_timeout = drain_timeout
        self.gpu_devices = list(gpu_devices or [])
        self.gpu_fallback = gpu_fallback
        self.agent_args = list(agent_args or [])
        self.loglevel = loglevel
        self.log_dir = log_dir
        self.agents: list[AgentProcess] = []
        self.plans: dict[str, PoolPlan] = {}
        self.session = requests.Session()
        self.stopping = threading.Event()
        self._warned: set[str] = set()
        self.events: list[tuple[float, str, str, int]] = []  # (time, pool, "start"|"drain"|"exit", pid)

    # --- reading the pools ------------------------------------------------------------------

    def fetch(self) -> list[dict[str, Any]] | None:
        try:
            response = self.session.get(self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        except requests.RequestException as exc:
            logger.warning("supervisor: cannot reach %s (%s); agents stay as they are", self.url, exc)
            return None
        if response.status_code != 200:
            logger.warning("supervisor: %s answered HTTP %s: %s", self.url, response.status_code, response.text[:300])
            return None
        return list(response.json().get("results") or [])

    # --- one round ----------------------------------------------------------------------------

    def step(self, pools: list[dict[str, Any]] | None = None) -> None:
        self.reap()
        pools = self.fetch() if pools is None else pools
        # Stopping (a signal arrived mid-round): start nothing; shutdown() drains what runs.
        if pools is None or self.stopping.is_set():
            return
        now = time.monotonic()
        # A pool that no longer exists (deleted, renamed) is wanted at zero: its agents drain.
        listed = {row["pool"] for row in pools}
        gone = sorted({a.pool for a in self.agents if a.pool not in listed and a.draining_since is None})
        pools = [*pools, *({"pool": name, "desired_workers": 0} for name in gone)]
        for row in pools:
            name = row["pool"]
            if self.only is not None and name not in self.only:
                continue
            plan = self.plans.get(name) or PoolPlan(name, 0, 1, 0)
            plan.desired = int(row["desired_workers"])
            plan.concurrency = max(1, int(row.get("concurrency") or 1))
            plan.gpus = int(row.get("gpus") or 0)
            self.plans[name] = plan
            if plan.gpus > 0 and not self._gpu_pool_runs_here(plan):
                continue
            running = [a for a in self.agents if a.pool == name and a.draining_since is None]
            if plan.desired > len(running):
                plan.lower_since = None
                for _ in range(plan.desired - len(running)):
                    if not self.start_agent(plan):
                        break
            elif plan.desired < len(running):
                plan.lower_since = plan.lower_since or now
                if now - plan.lower_since >= self.cooldown:
                    for agent in self._pick_idle(running, row)[: len(running) - plan.desired]:
                        self.drain(agent)
                    plan.lower_since = None
            else:
                plan.lower_since = None
        self.enforce_drain_timeout()

    def _gpu_pool_runs_here(self, plan: PoolPlan) -> bool:
        if self.gpu_devices or self.gpu_fallback:
            return True
        if plan.name not in self._warned:
            self._warned.add(plan.name)
            logger.warning(
                "supervisor: pool %s needs GPUs and this machine has none; "
                "set CELLAR_GPU_FALLBACK=1 to run it on the CPU",
                plan.name,
            )
        return False

    def _pick_idle(self, running: list[AgentProcess], row: dict[str, Any]) -> list[AgentProcess]:
        """Agents in the order to drain them: those holding no task first (their status reports
        say so), newest first."""
        busy = {
            int(w["pid"]): int(w.get("current_tasks") or 0)
            for w in row.get("worker_list") or []
            if w.get("host") == socket.gethostname()
        }
        return sorted(running, key=lambda a: (busy.get(a.pid, 0), -a.started))

    # --- processes ----------------------------------------------------------------------------

    def _free_devices(self, count: int) -> list[str] | None:
        held = {d for a in self.agents if a.alive() for d in a.devices}
        free = [d for d in self.gpu_devices if d not in held]
        return free[:count] if len(free) >= count else None

    def start_agent(self, plan: PoolPlan) -> bool:
        if self.stopping.is_set():
            return False
        devices: list[str] = []
        gpus_value = ""
        if plan.gpus > 0:
            if self.gpu_devices:
                found = self._free_devices(plan.gpus)
                if found is None:
                    logger.info(
                        "supervisor: pool %s wants another agent but no %d GPU(s) are free", plan.name, plan.gpus
                    )
                    return False
                devices, gpus_value = found, ",".join(found)
            else:
                gpus_value = config.FALLBACK
        concurrency = max(plan.concurrency, len(devices)) if devices else plan.concurrency
        command = [
            sys.executable, "-m", "cellar_worker.cli", "--pool", plan.name,
            "--concurrency", str(concurrency), "--loglevel", self.loglevel, "--gpus", gpus_value,
            *self.agent_args,
        ]  # fmt: skip
        env = dict(os.environ)
        env["CELLAR_WORKER_TOKEN"] = self.token
        stdout = None
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            stdout = open(os.path.join(self.log_dir, f"{plan.name}-{len(self.events)}.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
        if stdout is not None:
            stdout.close()
        self.agents.append(AgentProcess(plan.name, proc, devices))
        self.events.append((time.time(), plan.name, "start", proc.pid))
        logger.info("supervisor: started agent %s for pool %s (devices %s)", proc.pid, plan.name, devices or "-")
        return True

    def drain(self, agent: AgentProcess) -> None:
        if agent.draining_since is not None:
            return
        agent.draining_since = time.monotonic()
        self.events.append((time.time(), agent.pool, "drain", agent.pid))
        logger.info("supervisor: draining agent %s of pool %s (warm shutdown)", agent.pid, agent.pool)
        try:
            agent.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def enforce_drain_timeout(self) -> None:
        now = time.monotonic()
        for agent in self.agents:
            if agent.draining_since is not None and agent.alive() and now - agent.draining_since > self.drain_timeout:
                logger.warning("supervisor: agent %s drained for over %gs; killing it", agent.pid, self.drain_timeout)
                agent.proc.kill()

    def reap(self) -> None:
        for agent in list(self.agents):
            if agent.alive():
                continue
            self.agents.remove(agent)
            self.events.append((time.time(), agent.pool, "exit", agent.pid))
            if agent.draining_since is None and not self.stopping.is_set():
                logger.warning(
                    "supervisor: agent %s of pool %s exited by itself (code %s); it is replaced next round",
                    agent.pid, agent.pool, agent.proc.returncode,
                )  # fmt: skip

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for agent in self.agents:
            if agent.alive() and agent.draining_since is None:
                counts[agent.pool] = counts.get(agent.pool, 0) + 1
        return counts

    # --- life cycle ---------------------------------------------------------------------------

    def run(self) -> None:
        logger.info("supervisor: watching %s every %gs", self.url, self.interval)
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - one bad round must not stop the pools
                logger.exception("supervisor round failed")
            self.stopping.wait(self.interval)
        self.shutdown()

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain every agent and wait for them (SIGKILL past `timeout`, default drain_timeout)."""
        for agent in self.agents:
            if agent.alive():
                self.drain(agent)
        deadline = time.monotonic() + (self.drain_timeout if timeout is None else timeout)
        for agent in self.agents:
            try:
                agent.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                agent.proc.kill()
                agent.proc.wait(timeout=30)
        self.reap()
        self.session.close()


def machine_gpus() -> list[str]:
    raw = os.environ.get("CELLAR_SUPERVISOR_GPUS")
    if raw is not None:
        return [d.strip() for d in raw.split(",") if d.strip()]
    from cellar_worker.worker_status import nvidia_gpus

    return [str(gpu["index"]) for gpu in nvidia_gpus()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cellar-worker supervise", description="Scale this machine's pool agents on the demand the API reports."
    )
    parser.add_argument(
        "--pools", default=os.environ.get("CELLAR_SUPERVISOR_POOLS", ""), help="pools to run (default: all)"
    )
    parser.add_argument("--interval", type=float, default=float(os.environ.get("CELLAR_SUPERVISOR_INTERVAL", "2")))
    parser.add_argument("--cooldown", type=float, default=float(os.environ.get("CELLAR_SUPERVISOR_COOLDOWN", "15")))
    parser.add_argument(
        "--drain-timeout", type=float, default=float(os.environ.get("CELLAR_SUPERVISOR_DRAIN_TIMEOUT", "3600"))
    )
    parser.add_argument("--loglevel", default=os.environ.get("CELLAR_LOG_LEVEL", "INFO"))
    parser.add_argument("--api-url", default=None, help="default: $CELLAR_API_URL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = config.worker_token()
    if not token:
        raise SystemExit("cellar-worker supervise: set CELLAR_WORKER_TOKEN (manage.py cellar_worker_token prints it)")
    supervisor = Supervisor(
        api_url=args.api_url or config.api_url(),
        token=token,
        pools=[p.strip() for p in args.pools.split(",") if p.strip()] or None,
        interval=args.interval,
        cooldown=args.cooldown,
        drain_timeout=args.drain_timeout,
        gpu_devices=machine_gpus(),
        gpu_fallback=config.gpu_fallback_allowed(),
        loglevel=args.loglevel,
    )

    def stop(signum, _frame) -> None:
        logger.info("supervisor: signal %s; draining every agent", signum)
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor.run()
