"""Executor processes, for real: warm per (team, environment), never shared, logs, kills, timeouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from cellar.pipelines.execute import ArtifactRef, load_artifact, store_value
from cellar.pipelines.spec import StepSource
from cellar_worker.executors import ExecutorGone, ExecutorPool, executor_environment
from tests.workers.conftest import read, step_data, task_request


def _wait_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_batch_runs_in_one_process_outputs_content_addressed(pool, store, tmp_path):
    """A batch of a foreach step: the expand task, then each element, then the join, one process."""
    executor = pool.acquire("acme", "env-1")
    logs = tmp_path / "logs"
    grid = step_data(
        "grid",
        "scores = None",
        foreach={"iterable": "grid", "item": "g"},
        prelude="grid = [1, 2, 3]",
    )
    expand = executor.run(task_request(logs, grid, kind="expand"))
    assert expand["ok"]
    items = [ArtifactRef.from_dict(ref) for ref in expand["items"]]
    assert [load_artifact(ref, store=store, team="acme") for ref in items] == [1, 2, 3]

    # Scores over INLINE_MAX_BYTES, so they are blobs (smaller JSON values travel in their reference).
    code = "score = [g * scale] * 100"
    branch = step_data("train", code, foreach={"iterable": "grid", "item": "g"}, outputs=["score"])
    branch["parameters"] = ["scale"]
    scores = []
    for ref in items:
        answer = executor.run(task_request(logs, branch, item=ref.to_dict(), parameters={"scale": 10}))
        assert answer["ok"], answer
        scores.append(answer["outputs"]["score"])
    # Content-addressed: the same value is the same blob, under the team's prefix.
    assert scores[0]["sha256"] == store_value([10] * 100, store=store, team="acme").sha256
    assert (tmp_path / "artifacts" / "teams" / "acme" / "data" / scores[0]["sha256"][:2]).is_dir()

    join = step_data("pick", "best = max(score)", inputs={"score": "train"}, outputs=["best"], join=True)
    answer = executor.run(task_request(logs, join, inputs={"score": scores}))
    assert load_artifact(ArtifactRef.from_dict(answer["outputs"]["best"]), store=store, team="acme") == [30] * 100
    assert executor.tasks_run == 5 and executor.alive()


def test_warm_process_per_team_and_environment_never_shared(pool, tmp_path):
    """Released executors are reused by the same (team, environment) only; a busy one is never handed out twice."""
    step = step_data("who", "import os\npid = os.getpid()", outputs=["pid"])
    first = pool.acquire("acme", "env-1")
    first.run(task_request(tmp_path, step))
    pool.release(first)

    again = pool.acquire("acme", "env-1")
    assert again.pid == first.pid  # warm: the same interpreter for the next batch
    other_team = pool.acquire("rival", "env-1")
    other_env = pool.acquire("acme", "env-2")
    concurrent = pool.acquire("acme", "env-1")  # `again` is busy: a second batch gets its own
    pids = {again.pid, other_team.pid, other_env.pid, concurrent.pid}
    assert len(pids) == 4
    for executor in (again, other_team, other_env, concurrent):
        pool.release(executor)
    assert pool.acquire("rival", "env-1").pid == other_team.pid
    assert pool.acquire("rival", "env-2").pid not in pids


def test_state_does_not_leak_between_tasks_but_imports_stay_warm(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    first = executor.run(task_request(tmp_path, step_data("a", "import json\nsecret = 1\nos_name = __name__")))
    assert first["ok"]
    second = executor.run(task_request(tmp_path, step_data("b", "print(secret)")))
    assert not second["ok"] and second["error"]["exc_type"] == "NameError"
    warm = executor.run(task_request(tmp_path, step_data("c", "import sys\nloaded = 'json' in sys.modules")))
    assert warm["ok"]


def test_logs_capture_python_c_level_and_subprocess_output_per_task(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    code = textwrap.dedent(
        """
        import os, sys, ctypes
        print("from print")
        sys.stderr.write("to stderr\\n")
        os.write(1, b"raw fd write\\n")
        ctypes.CDLL(None).printf(b"from C printf\\n")
        os.system("echo from a subprocess")
        """
    )
    one = task_request(tmp_path, step_data("noisy", code))
    assert executor.run(one)["ok"]
    out = read(one["stdout"])
    for text in ("from print", "raw fd write", "from C printf", "from a subprocess"):
        assert text in out
    assert out.index("from print") < out.index("raw fd write")
    assert read(one["stderr"]) == "to stderr\n"

    two = task_request(tmp_path, step_data("quiet", "print('second task')"))
    assert executor.run(two)["ok"]
    assert read(two["stdout"]) == "second task\n"  # per task: nothing of the first one


def test_a_failing_step_reports_the_cell_and_line(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    step = step_data("boom", "x = 1\nprint('before')\n1 / 0")
    source = {"cells": [4], "first_lines": [1], "cell_lines": []}
    request = task_request(tmp_path, step, source=source)
    answer = executor.run(request)
    assert not answer["ok"]
    error = answer["error"]
    assert (error["exc_type"], error["cell"], error["line"], error["step"]) == ("ZeroDivisionError", 4, 3, "boom")
    assert "cell 4, line 3" in error["traceback"]
    assert read(request["stdout"]) == "before\n"
    assert StepSource(**source).cells == [4]
    assert executor.alive()  # a user error does not cost the process


def test_a_killed_executor_is_reported_gone_and_a_fresh_one_runs_the_rest(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    marker = tmp_path / "started"
    step = step_data("slow", f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(600)")
    killer = psutil.Process(executor.pid)

    def kill_when_started():
        while not marker.exists():
            time.sleep(0.02)
        killer.send_signal(signal.SIGKILL)  # what the OOM killer or a segfault looks like from outside

    import threading

    threading.Thread(target=kill_when_started, daemon=True).start()
    with pytest.raises(ExecutorGone) as gone:
        executor.run(task_request(tmp_path, step))
    assert gone.value.reason is None and gone.value.returncode == -signal.SIGKILL
    pool.discard(executor)

    fresh = pool.acquire("acme", "env")
    assert fresh.pid != executor.pid
    assert fresh.run(task_request(tmp_path, step_data("next", "y = 2")))["ok"]


def test_timeout_soft_stops_at_the_running_line(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    step = step_data("sleepy", "import time\nx = 1\ntime.sleep(600)", timeout=1)
    answer = executor.run(task_request(tmp_path, step, timeout=1), deadline=time.monotonic() + 120)
    assert not answer["ok"]
    assert answer["error"]["exc_type"] == "StepTimeout" and answer["error"]["frames"][-1]["line"] == 3
    assert executor.alive()


def test_timeout_hard_kills_a_step_that_ignores_it(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    code = "import time\nwhile True:\n    try:\n        time.sleep(600)\n    except BaseException:\n        pass"
    with pytest.raises(ExecutorGone) as gone:
        executor.run(task_request(tmp_path, step_data("stubborn", code), timeout=1), deadline=time.monotonic() + 2)
    assert gone.value.reason == "timeout"
    assert _wait_gone(executor.pid)


def test_kill_from_another_thread_names_the_reason(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    marker = tmp_path / "running"
    step = step_data("long", f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(600)")
    import threading

    def cancel_when_started():
        while not marker.exists():
            time.sleep(0.02)
        executor.kill("cancel")

    threading.Thread(target=cancel_when_started, daemon=True).start()
    with pytest.raises(ExecutorGone) as gone:
        executor.run(task_request(tmp_path, step))
    assert gone.value.reason == "cancel"
    pool.release(executor)  # a killed executor is not kept
    assert pool.idle() == [] and _wait_gone(executor.pid)


def test_killing_an_executor_also_kills_what_it_started(pool, tmp_path):
    executor = pool.acquire("acme", "env")
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, pathlib, time\n"
        "p = subprocess.Popen(['sleep', '600'])\n"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "time.sleep(600)"
    )
    import threading

    def cancel_when_started():
        while not pidfile.exists() or not pidfile.read_text():
            time.sleep(0.02)
        executor.kill("cancel")

    threading.Thread(target=cancel_when_started, daemon=True).start()
    with pytest.raises(ExecutorGone):
        executor.run(task_request(tmp_path, step_data("spawner", code)))
    assert _wait_gone(int(pidfile.read_text()))


def test_environment_has_no_broker_or_database_credentials(store_dir, tmp_path, monkeypatch, redis_url):
    import redis

    for name, value in {
        "DATABASE_URL": "postgres://postgres:secret@db/cellar",
        "REDIS_URL": redis_url,
        "CELLAR_BROKER_URL": "redis://broker:6379/0",
        "CELLAR_SECRET_KEY": "server-secret",
        "AWS_ACCESS_KEY_ID": "for-the-artifact-store",
        "SOME_OPERATOR_VAR": "not passed",
        "PASSED_ON_PURPOSE": "yes",
    }.items():
        monkeypatch.setenv(name, value)
    broker = redis.Redis.from_url(redis_url)
    broker.ping()  # the agent's process holds a broker connection while it starts the executor
    pool = ExecutorPool(
        env=executor_environment(
            artifact_store_url=f"file://{store_dir}", extra=["PASSED_ON_PURPOSE", "DATABASE_URL", "REDIS_URL"]
        )
    )
    try:
        executor = pool.acquire("acme", "env")
        seen = psutil.Process(executor.pid).environ()
        for name in ("DATABASE_URL", "REDIS_URL", "CELLAR_BROKER_URL", "CELLAR_SECRET_KEY", "SOME_OPERATOR_VAR"):
            assert name not in seen
        assert seen["ARTIFACT_STORE_URL"] == f"file://{store_dir}"
        assert seen["AWS_ACCESS_KEY_ID"] == "for-the-artifact-store" and seen["PASSED_ON_PURPOSE"] == "yes"
        # Only its own socket to the agent: no inherited broker connection.
        sockets = [fd for fd in psutil.Process(executor.pid).net_connections(kind="all")]
        assert len(sockets) == 1, sockets
        # User code sees the task's token and URL, set per task.
        step = step_data("env", "import json, os\nprint(json.dumps(dict(os.environ)))")
        env = {"CELLAR_URL": "http://cellar", "CELLAR_TOKEN": "task-token", "CELLAR_TEAM": "acme", "CELLAR_RUN_ID": ""}
        request = task_request(tmp_path, step, env=env)
        assert executor.run(request)["ok"]
        inside = json.loads(read(request["stdout"]))
        assert inside["CELLAR_TOKEN"] == "task-token" and inside["CELLAR_URL"] == "http://cellar"
        assert "CELLAR_RUN_ID" not in inside and "DATABASE_URL" not in inside and "REDIS_URL" not in inside
    finally:
        pool.close()
        broker.close()


def test_idle_executors_are_reaped_and_capped(store_dir, tmp_path):
    pool = ExecutorPool(env=executor_environment(artifact_store_url=f"file://{store_dir}"), max_idle=2)
    try:
        started = [pool.acquire(team, "env") for team in ("a", "b", "c")]
        for executor in started:
            pool.release(executor)
        # Three released, two kept: the one idle longest is stopped.
        assert [e.pid for e in pool.idle()] == [started[1].pid, started[2].pid]
        assert _wait_gone(started[0].pid)
        assert pool.reap() == 0  # nothing idle long enough yet
        assert pool.reap(now=time.monotonic() + pool.idle_seconds + 1) == 2
        assert pool.idle() == [] and all(_wait_gone(e.pid) for e in started)
    finally:
        pool.close()


def test_an_executor_exits_when_its_agent_is_killed(store_dir, tmp_path):
    """SIGKILL of the agent mid-step: the executor notices and exits, nothing runs on unobserved."""
    marker = tmp_path / "running"
    step = step_data("long", f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(600)")
    request = task_request(tmp_path / "logs", step)
    script = textwrap.dedent(
        f"""
        import json
        from cellar_worker.executors import ExecutorPool, executor_environment
        pool = ExecutorPool(env=executor_environment(artifact_store_url="file://{store_dir}"))
        executor = pool.acquire("acme", "env")
        print(executor.pid, flush=True)
        executor.run(json.loads({json.dumps(request)!r}))
        """
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd(), env=dict(os.environ)
    )
    try:
        executor_pid = int(agent.stdout.readline())
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        agent.kill()
        agent.wait()
        assert _wait_gone(executor_pid)
    finally:
        if agent.poll() is None:
            agent.kill()


def test_a_batchs_step_goes_once_and_later_tasks_name_it(pool, tmp_path):
    """The agent sends the step, source and parameters with a batch's first task only; the
    executor runs the later tasks from what it kept, and refuses a batch key it never got."""
    executor = pool.acquire("acme", "env-1")
    step = step_data("scale", "y = item * k", outputs=["y"], foreach={"iterable": "xs", "item": "item"})
    step["parameters"] = ["k"]
    first = task_request(tmp_path, step, static="batch-1", parameters={"k": 3}, item=store_ref(2))
    assert executor.run(first)["ok"]
    later = task_request(tmp_path, step, static="batch-1", item=store_ref(5))
    for name in ("step", "source", "parameters"):
        del later[name]
    answer = executor.run(later)
    assert answer["ok"] and json.loads(answer["outputs"]["y"]["inline"]) == 15
    unknown = {**later, "static": "batch-2"}
    answer = executor.run(unknown)
    assert not answer["ok"] and "protocol error" in answer["error"]["message"]


def store_ref(value) -> dict:
    """A foreach element as the engine hands it over: small values travel in their reference."""
    return store_value(value, store=None, team="acme").to_dict()
