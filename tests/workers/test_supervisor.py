"""The supervisor's decisions, round by round, on pools described as the API describes them; the
agents are stand-in processes (`sleep`), so what is tested is whom it starts, when it drains, which
agent it drains and which GPUs it hands out. The real thing, with real agents and a real run, is
tests/compute/test_supervisor_processes.py."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from cellar_worker import supervisor as supervisor_module
from cellar_worker.supervisor import Supervisor


@pytest.fixture
def launched(monkeypatch):
    """Every agent command the supervisor runs, each started as a `sleep` stand-in."""
    commands: list[list[str]] = []
    real_popen = subprocess.Popen

    def fake_popen(command, **kwargs):
        commands.append(command)
        return real_popen(["sleep", "60"])

    monkeypatch.setattr(supervisor_module.subprocess, "Popen", fake_popen)
    return commands


@pytest.fixture
def make():
    made = []

    def build(**kwargs) -> Supervisor:
        kwargs.setdefault("cooldown", 0.3)
        sup = Supervisor(api_url="http://127.0.0.1:9", token="cwk_x", **kwargs)
        made.append(sup)
        return sup

    yield build
    for sup in made:
        sup.shutdown(timeout=5)


def row(pool: str = "cpu", desired: int = 0, gpus: int = 0, workers=()) -> dict:
    return {"pool": pool, "desired_workers": desired, "concurrency": 1, "gpus": gpus, "worker_list": list(workers)}


def test_up_at_once_down_after_the_cool_down(make, launched):
    sup = make()
    sup.step([row(desired=2)])
    assert sup.counts() == {"cpu": 2} and len(launched) == 2
    assert launched[0][launched[0].index("--pool") + 1] == "cpu"
    sup.step([row(desired=0)])
    assert sup.counts() == {"cpu": 2}, "drained before the cool-down"
    time.sleep(0.4)
    sup.step([row(desired=0)])
    assert sup.counts() == {} and all(a.draining_since is not None for a in sup.agents)
    time.sleep(0.2)
    sup.step([row(desired=0)])  # the drained stand-ins exited on SIGTERM: reaped
    assert sup.agents == [] and [e[2] for e in sup.events].count("exit") == 2


def test_demand_coming_back_cancels_a_pending_scale_down(make, launched):
    sup = make()
    sup.step([row(desired=2)])
    sup.step([row(desired=1)])
    time.sleep(0.2)
    sup.step([row(desired=2)])
    time.sleep(0.2)
    sup.step([row(desired=1)])
    assert sup.counts() == {"cpu": 2}, "the cool-down restarted when demand came back"


def test_an_idle_agent_is_drained_before_a_busy_one(make, launched):
    sup = make(cooldown=0)
    sup.step([row(desired=2)])
    busy, idle = sup.agents
    workers = [
        {"pid": busy.pid, "host": socket.gethostname(), "current_tasks": 3},
        {"pid": idle.pid, "host": socket.gethostname(), "current_tasks": 0},
    ]
    sup.step([row(desired=1, workers=workers)])
    assert idle.draining_since is not None and busy.draining_since is None


def test_a_gpu_pool_needs_gpus_or_the_fallback(make, launched):
    none = make()
    none.step([row("gpu", desired=1, gpus=1)])
    assert none.counts() == {} and launched == []

    fallback = make(gpu_fallback=True)
    fallback.step([row("gpu", desired=1, gpus=1)])
    assert fallback.counts() == {"gpu": 1}
    assert launched[-1][launched[-1].index("--gpus") + 1] == "fallback"


def test_each_gpu_agent_gets_its_own_devices(make, launched):
    sup = make(gpu_devices=["0", "1", "2"])
    sup.step([row("gpu", desired=3, gpus=1), row("cpu", desired=1)])
    assert sup.counts() == {"gpu": 3, "cpu": 1}
    devices = [c[c.index("--gpus") + 1] for c in launched if "gpu" in c]
    assert sorted(devices) == ["0", "1", "2"]
    cpu = next(c for c in launched if c[c.index("--pool") + 1] == "cpu")
    assert cpu[cpu.index("--gpus") + 1] == ""
    two_each = make(gpu_devices=["0", "1", "2"])
    launched.clear()
    two_each.step([row("gpu", desired=2, gpus=2)])
    # Only one agent fits: the second would need 2 of the 1 device left.
    assert len(launched) == 1 and launched[0][launched[0].index("--gpus") + 1] == "0,1"


def test_a_stopping_supervisor_starts_nothing(make, launched):
    sup = make()
    sup.stopping.set()
    sup.step([row(desired=3)])
    assert launched == []


def test_an_unreachable_api_leaves_agents_as_they_are(make, launched):
    sup = make()
    sup.step([row(desired=1)])
    sup.step()  # fetch() fails: nothing listens on port 9
    assert sup.counts() == {"cpu": 1}


def test_the_agents_of_a_pool_that_is_gone_drain(make, launched):
    sup = make(cooldown=0)
    sup.step([row("bigmem", desired=1), row(desired=1)])
    sup.step([row(desired=1)])
    assert sup.counts() == {"cpu": 1}
