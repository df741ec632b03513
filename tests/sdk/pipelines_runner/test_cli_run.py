"""`cellar run` as a user runs it: a subprocess on a notebook written by the test."""

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

from cellar.pipelines.compiler import compile_notebook

REPO = Path(__file__).resolve().parents[3]


def cellar_run(*args, local_dir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CELLAR_LOCAL_DIR": str(local_dir)}
    return subprocess.run(
        [sys.executable, "-m", "cellar.cli", "run", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_a_successful_run_prints_the_version_and_a_summary(iris_notebook, local_dir):
    result = cellar_run(
        iris_notebook, "-p", "C_values=[0.1, 1.0]", "-p", "seed=3", "--workers", "2", local_dir=local_dir
    )
    assert result.returncode == 0, result.stderr
    version = compile_notebook(iris_notebook, notebook_name=iris_notebook.name).spec.content_hash()
    assert f"version {version}" in result.stdout  # the id `cellar promote` would create
    assert re.search(r"^  train +x2  2 succeeded", result.stdout, re.M)
    assert re.search(r"^  load +succeeded .*X_train \(npy, ", result.stdout, re.M)
    assert re.search(r"^  evaluate +succeeded", result.stdout, re.M)
    # Not a terminal: the progress is one plain line per task on stderr.
    assert "train[1] succeeded" in result.stderr and "5/5 tasks finished" in result.stderr

    run_dir = Path(re.search(r"^run \S+: succeeded in [\d.]+s \((.+)\)$", result.stdout, re.M).group(1))
    record = json.loads((run_dir / "run.json").read_text())
    assert record["spec_hash"] == version and record["parameters"]["seed"] == 3
    assert run_dir.parent == local_dir / "runs"

    again = cellar_run(iris_notebook, "-p", "C_values=[0.1, 1.0]", "-p", "seed=3", local_dir=local_dir)
    assert again.returncode == 0
    assert re.search(r"^  train +x2  2 cached", again.stdout, re.M)
    forced = cellar_run(iris_notebook, "-p", "C_values=[0.1, 1.0]", "-p", "seed=3", "--no-cache", local_dir=local_dir)
    assert re.search(r"^  train +x2  2 succeeded", forced.stdout, re.M)


def test_a_failing_step_exits_1_with_its_cell_line_and_traceback(write_notebook, local_dir):
    path = write_notebook(
        [
            ("md", "# ratios"),
            ("def safe_ratio(a, b):\n    return a / b", ["functions"]),
            ("values = [4, 0]", ["step:prepare"]),
            ("print('dividing by', v)\nratio = safe_ratio(10, v)", ["step:divide", "foreach:values:v"]),
            ("best = max(ratio)", ["step:gather", "join"]),
            ("print(best)", ["step:show"]),
        ]
    )
    result = cellar_run(path, "--dir", local_dir / "elsewhere", local_dir=local_dir)
    assert result.returncode == 1
    assert "error: step 'divide[1]' failed at cell 3, line 2" in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "cell 3, line 2, in <module>\n    ratio = safe_ratio(10, v)" in result.stderr
    assert "in safe_ratio\n    return a / b" in result.stderr
    assert "dividing by 0" in result.stderr  # what the step printed before it failed
    assert "cellar/pipelines" not in result.stderr  # only the user's frames
    assert re.search(r"^  gather +upstream_failed", result.stdout, re.M)
    assert re.search(r"^  show +upstream_failed", result.stdout, re.M)
    assert (local_dir / "elsewhere" / "runs").is_dir() and not (local_dir / "runs").exists()


def test_a_notebook_that_does_not_compile_exits_2_listing_every_problem(write_notebook, local_dir):
    path = write_notebook(
        [
            ("x = undefined_thing + 1", ["step:a"]),
            ("%pip install foo\ny = x", ["step:b"]),
        ]
    )
    result = cellar_run(path, local_dir=local_dir)
    assert result.returncode == 2
    assert "does not compile (2 problems)" in result.stderr
    assert "cell 0, step 'a', line 1" in result.stderr and "[undefined_name]" in result.stderr
    assert "cell 1, step 'b', line 1" in result.stderr and "[pip_magic]" in result.stderr
    assert not (local_dir / "runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "nope=1"], "unknown parameter 'nope' (known parameters: n)"),
        (["-p", "n=many"], "parameter 'n' expects an integer"),
        (["-p", "n"], "'n' is not key=value"),
        (["--cells", "1-x"], "error: --cells '1-x'"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
    ids=["unknown-parameter", "bad-value", "no-equals", "bad-cells", "bad-workers"],
)
def test_bad_command_lines_exit_2(write_notebook, local_dir, args, message):
    path = write_notebook([("n = 2", ["parameters"]), ("twice = n * 2", ["step:double"])])
    result = cellar_run(path, *args, local_dir=local_dir)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_missing_notebook_exits_2(tmp_path, local_dir):
    result = cellar_run(tmp_path / "nowhere.ipynb", local_dir=local_dir)
    assert result.returncode == 2 and "no notebook at" in result.stderr


def test_cells_selects_part_of_the_notebook(write_notebook, local_dir):
    path = write_notebook(
        [
            ("a = 1", ["step:one"]),
            ("b = a + 1", ["step:two"]),
            ("raise RuntimeError('not selected, never runs')", ["step:three"]),
        ]
    )
    result = cellar_run(path, "--cells", "0-1", local_dir=local_dir)
    assert result.returncode == 0, result.stderr
    assert "2 steps" in result.stdout and "three" not in result.stdout


def test_ctrl_c_stops_the_run_and_records_it_cancelled(write_notebook, local_dir):
    path = write_notebook(
        [
            ("import time\nprint('started', flush=True)\ntime.sleep(120)\nx = 1", ["step:slow"]),
            ("y = x + 1", ["step:after"]),
        ]
    )
    # faulthandler: if the command ever hangs, SIGABRT below dumps every thread's stack into stderr.
    env = {**os.environ, "CELLAR_LOCAL_DIR": str(local_dir), "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cellar.cli", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,  # its own process group, as a terminal gives it
        # and Ctrl-C's default action, as a terminal gives it: a process started with SIGINT ignored
        # keeps it ignored, and pytest itself may have been started so (a script's background job;
        # tests/conftest.py says so in the header, and puts it back after any test that changes it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for _ in range(300):  # wait (bounded) until the step is running
            logs = list((local_dir / "runs").glob("*/logs/slow.stdout"))
            if logs and "started" in logs[0].read_text():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the step never started")
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole group
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            out, err = process.communicate(timeout=30)
            pytest.fail(f"cellar run did not end after Ctrl-C; its threads:\n{err[-6000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "interrupted" in err
    record = json.loads((logs[0].parent.parent / "run.json").read_text())
    assert record["state"] == "cancelled"
    assert {t["step"]: t["state"] for t in record["tasks"]} == {"slow": "cancelled", "after": "cancelled"}
