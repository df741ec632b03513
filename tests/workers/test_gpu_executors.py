"""GPU pools: one executor per GPU (CUDA_VISIBLE_DEVICES set to one device each, never two steps on
one GPU at once), the GPU fallback (no device, CELLAR_GPU_FALLBACK=1 visible to the step), and what
an agent reports about itself (nvidia-smi parsed when present, utilization from /proc or psutil)."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from cellar_worker import config, worker_status
from cellar_worker.executors import ExecutorPool, executor_environment
from tests.workers.conftest import read, step_data, task_request

SHOW = step_data(
    "show",
    "import json, os\n"
    "print(json.dumps({k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'CELLAR_GPU_FALLBACK')}))",
)


def seen(executor, tmp_path) -> dict:
    request = task_request(tmp_path / "logs", SHOW)
    answer = executor.run(request)
    assert answer["ok"], answer
    return json.loads(read(request["stdout"]).strip())


@pytest.fixture
def gpu_pool(store_dir):
    env = executor_environment(artifact_store_url=f"file://{store_dir}", source={"PATH": os.environ["PATH"]})
    started = ExecutorPool(env=env, devices=["0", "1"])
    yield started
    started.close()


def test_each_executor_gets_its_own_gpu(gpu_pool, tmp_path):
    first = gpu_pool.acquire("acme", "env")
    second = gpu_pool.acquire("rival", "env")
    devices = {seen(first, tmp_path)["CUDA_VISIBLE_DEVICES"], seen(second, tmp_path)["CUDA_VISIBLE_DEVICES"]}
    assert devices == {"0", "1"}
    # A third team's batch waits for a device instead of sharing one.
    got = []
    waiter = threading.Thread(target=lambda: got.append(gpu_pool.acquire("third", "env")))
    waiter.start()
    waiter.join(timeout=1.5)
    assert waiter.is_alive() and not got
    freed = gpu_pool.device_of(first)
    gpu_pool.release(first)
    waiter.join(timeout=120)
    assert got, "the waiting batch never got the freed GPU"
    third = got[0]
    assert seen(third, tmp_path)["CUDA_VISIBLE_DEVICES"] == freed
    # The idle executor that held that GPU was stopped: its memory on the device is freed.
    assert not first.alive() and first not in gpu_pool.idle()
    gpu_pool.release(second)
    gpu_pool.release(third)


def test_a_warm_executor_keeps_its_gpu(gpu_pool, tmp_path):
    executor = gpu_pool.acquire("acme", "env")
    device = seen(executor, tmp_path)["CUDA_VISIBLE_DEVICES"]
    gpu_pool.release(executor)
    again = gpu_pool.acquire("acme", "env")
    assert again is executor and seen(again, tmp_path)["CUDA_VISIBLE_DEVICES"] == device
    gpu_pool.release(again)


def test_the_gpu_fallback_runs_on_the_cpu_and_tells_the_step(store_dir, tmp_path):
    env = executor_environment(
        artifact_store_url=f"file://{store_dir}", source={"PATH": os.environ["PATH"], "CUDA_VISIBLE_DEVICES": "3"}
    )
    pool = ExecutorPool(env=env, gpu_fallback=True)
    try:
        executor = pool.acquire("acme", "env")
        assert seen(executor, tmp_path) == {"CUDA_VISIBLE_DEVICES": "", "CELLAR_GPU_FALLBACK": "1"}
    finally:
        pool.close()


def test_executors_never_see_the_worker_credential(store_dir):
    env = executor_environment(
        artifact_store_url=f"file://{store_dir}",
        source={"PATH": "/bin", "CELLAR_WORKER_TOKEN": "cwk_secret"},
        extra=["CELLAR_WORKER_TOKEN"],
    )
    assert "CELLAR_WORKER_TOKEN" not in env


@pytest.mark.parametrize(
    "raw, fallback_allowed, expected",
    [("", False, ([], False)), ("0,1", False, (["0", "1"], False)), ("fallback", False, ([], True)),
     ("auto", True, ([], True))],
    ids=["cpu-pool", "devices", "fallback", "auto-without-gpu-falls-back"],
)  # fmt: skip
def test_worker_gpus_setting(monkeypatch, raw, fallback_allowed, expected):
    monkeypatch.setenv("CELLAR_WORKER_GPUS", raw)
    monkeypatch.setenv("CELLAR_GPU_FALLBACK", "1" if fallback_allowed else "0")
    monkeypatch.setattr(worker_status, "nvidia_gpus", lambda devices=None: [])
    assert config.worker_gpus() == expected


def test_auto_without_a_gpu_or_the_fallback_refuses_to_start(monkeypatch):
    monkeypatch.setenv("CELLAR_WORKER_GPUS", "auto")
    monkeypatch.setenv("CELLAR_GPU_FALLBACK", "0")
    monkeypatch.setattr(worker_status, "nvidia_gpus", lambda devices=None: [])
    with pytest.raises(SystemExit, match="CELLAR_GPU_FALLBACK=1"):
        config.worker_gpus()


def test_nvidia_smi_is_read_when_present(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho '0, NVIDIA H200, GPU-aaa, 143771, 1024, 37'\necho '1, NVIDIA H200, GPU-bbb, 143771, 0, 0'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    gpus = worker_status.nvidia_gpus()
    assert [g["index"] for g in gpus] == [0, 1] and gpus[0]["utilization"] == 37 and gpus[0]["memory_used"] == 1024
    assert [g["uuid"] for g in worker_status.nvidia_gpus(["1"])] == ["GPU-bbb"]


def test_without_nvidia_smi_there_are_no_gpus(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert worker_status.nvidia_gpus() == []


def test_usage_from_proc_without_psutil(monkeypatch):
    usage = worker_status.ProcessUsage()
    first = usage._from_proc()
    sum(i * i for i in range(200_000))  # some CPU time between two samples
    second = usage._from_proc()
    assert first["cpu_percent"] is None and second["cpu_percent"] is not None and second["cpu_percent"] >= 0
    assert second["memory_rss"] > 0 and 0 < second["memory_percent"] < 100
