"""The local supervisor with real processes: web (live_server) + control worker + `cellar-worker
supervise`, which starts and drains real pool agents on the demand the API reports.

One run covers: no agent while idle (min 0), scale up to max on a fan-out, scale down with a
drain while tasks run (nothing lost, nothing run twice), routing by resources (CPU steps on
`cpu@` agents, the gpu:1 step on a `gpu@` agent), the GPU fallback (the gpu pool runs on the
CPU, and its task says so), and back to zero when idle, the GPU pool included.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellar.artifacts.local import LocalArtifactStore
from cellar.pipelines.execute import ArtifactRef, load_artifact
from cellar_server.compute import selectors
from cellar_server.compute.credentials import worker_token
from cellar_server.compute.models import Pool, Worker
from cellar_server.pipelines.models import PipelineRun, Task, TaskAttempt
from tests.engine_e2e import conftest as e2e
from tests.engine_e2e.conftest import BIN, REPO, Stack, wait_for
from tests.factories import mint_token
from tests.pipelines.engine.conftest import build_notebook, cell

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

ITEMS = 12


@pytest.fixture(scope="module")
def control(live_server, django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    from django.conf import settings

    home = tmp_path_factory.mktemp("compute-e2e")
    with django_db_blocker.unblock():
        database_url = e2e.test_database_url()
    stack = Stack(
        url=live_server.url,
        home=home,
        store_dir=home / "artifacts",
        redis_url=redis_url,
        database_url=database_url,
        secret_key=settings.SECRET_KEY,
    )
    try:
        stack.start_control()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def supervisor(control, broker, settings):
    settings.CELLAR_API_URL = control.url
    settings.ARTIFACT_STORE_URL = f"file://{control.store_dir}"
    settings.CELLAR_ENGINE_POOL_WORKERS = 2
    settings.CELLAR_POOLS = ""
    settings.CELLAR_GPU_FALLBACK = True
    # Transactional tests flush the tables: the migration's default pools are made again here.
    Pool.objects.update_or_create(name="cpu", defaults={"min_workers": 0, "max_workers": 2, "concurrency": 1})
    Pool.objects.update_or_create(name="gpu", defaults={"min_workers": 0, "max_workers": 1, "gpus": 1})
    env = control.common_env()
    env.update(
        CELLAR_WORKER_TOKEN=worker_token(),
        CELLAR_HEARTBEAT_S="1",
        CELLAR_WORKER_REPORT_S="1",
        CELLAR_GPU_FALLBACK="1",
        CELLAR_SUPERVISOR_GPUS="",  # this machine has no GPU, whatever nvidia-smi says
        DATABASE_URL=control.database_url,  # given on purpose: agents drop it
    )
    log = control.home / "supervisor.log"
    control.logs["supervisor"] = log
    command = [str(BIN / "cellar-worker"), "supervise", "--interval", "0.5", "--cooldown", "3", "--loglevel", "INFO"]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for(lambda: "watching" in control.output("supervisor"), timeout=60, what="the supervisor", stack=control)
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def promote_and_run(control, token: str, notebook: dict, name: str, tmp_path: Path) -> subprocess.Popen:
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(notebook))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CELLAR_")}
    environ.update(CELLAR_URL=control.url, CELLAR_TOKEN=token)
    return subprocess.Popen(
        [sys.executable, "-m", "cellar.cli", "promote", str(path), "--pipeline", name, "--run", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
    )


def alive(pool: str) -> int:
    return selectors.workers_alive(pool=pool).count()


def the_notebook() -> dict:
    return build_notebook(
        cell(f"items = list(range({ITEMS}))", "step:make"),
        cell("import time\ntime.sleep(1.5)\nsq = item * item", "step:square", "foreach:items"),
        cell("total = sum(sq)", "step:total", "join"),
        cell(
            "import json, os\nprint(json.dumps({'fallback': os.environ.get('CELLAR_GPU_FALLBACK'),"
            " 'cuda': os.environ.get('CUDA_VISIBLE_DEVICES'), 'total': total}))",
            "step:train",
            "gpu:1",
        ),
    )


def test_the_supervisor_scales_routes_and_drains(control, supervisor, team, members, tmp_path):
    time.sleep(2)  # a few rounds with no demand
    assert alive("cpu") == 0 and alive("gpu") == 0, control.output("supervisor")[-3000:]
    assert "started agent" not in control.output("supervisor")

    token = mint_token(team, members["editor"])[1]
    cli = promote_and_run(control, token, the_notebook(), "scale", tmp_path)
    # Up: the fan-out's demand brings the cpu pool to its max (2).
    wait_for(lambda: alive("cpu") == 2 or cli.poll() is not None, timeout=180, what="two cpu agents", stack=control)
    assert cli.poll() is None, cli.communicate()[0] + control.output("supervisor")[-3000:]
    # Down with a drain while tasks run: the pool's max drops to 1 and one busy agent is stopped warm.
    Pool.objects.filter(name="cpu").update(max_workers=1)
    wait_for(
        lambda: re.search(r"draining agent \d+ of pool cpu", control.output("supervisor")),
        timeout=60,
        what="a drain",
        stack=control,
    )
    out, _ = cli.communicate(timeout=400)
    assert cli.returncode == 0, out + control.output("supervisor")[-4000:]

    run = PipelineRun.all_teams.get(pipeline__name="scale")
    assert run.state == "succeeded"
    tasks = list(Task.all_teams.filter(run_id=run.pk, kind="step"))
    assert len([t for t in tasks if t.step == "square"]) == ITEMS
    for task in tasks:
        states = list(TaskAttempt.all_teams.filter(task=task).values_list("state", flat=True))
        # Nothing lost (every task succeeded), nothing run twice (one attempt each).
        assert task.state == "succeeded" and states == ["succeeded"], (task.step, task.index, states)
    workers = dict(TaskAttempt.all_teams.filter(task__run_id=run.pk).values_list("task__step", "worker"))
    # Routing: the gpu:1 step on the gpu pool's agent, the others on cpu agents.
    assert workers["train"].startswith("gpu@"), workers
    # Its name says it ran on the CPU: every page showing the task's worker shows that.
    assert workers["train"].endswith("+cpu-fallback"), workers
    assert all(workers[s].startswith("cpu@") for s in ("make", "total")), workers
    square_workers = set(
        TaskAttempt.all_teams.filter(task__run_id=run.pk, task__step="square").values_list("worker", flat=True)
    )
    assert len(square_workers) == 2 and all(w.startswith("cpu@") for w in square_workers), square_workers
    # The drained agent reported itself stopped.
    wait_for(lambda: Worker.objects.filter(pool="cpu", state="stopped").exists(), timeout=60, what="a stopped report")

    # The GPU fallback: the step saw no device and the flag; the worker and the page know it.
    train = Task.all_teams.get(run_id=run.pk, step="train")
    printed = load_artifact(
        ArtifactRef.from_dict(train.logs["stdout"]), store=LocalArtifactStore(control.store_dir), team="acme"
    )
    assert json.loads(printed) == {"fallback": "1", "cuda": "", "total": sum(i * i for i in range(ITEMS))}
    assert Worker.objects.get(name=workers["train"]).gpu_fallback
    assert [row["step"] for row in selectors.fallback_tasks(team_id=team.id)] == ["train"]

    # Back to zero once idle, the GPU pool included.
    wait_for(lambda: alive("cpu") == 0 and alive("gpu") == 0, timeout=120, what="zero agents", stack=control)
    log = control.output("supervisor")
    assert re.search(r"draining agent \d+ of pool gpu", log), log[-3000:]
    assert "exited by itself" not in log
