"""`cellar compile`: the text and JSON reports, exit codes, --cells and the local pools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cellar.cli import main
from cellar.pipelines.cli_compile import local_pools
from tests.sdk.pipelines.conftest import corpus_path

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_prints_steps_dag_and_version(capsys):
    assert main(["compile", str(corpus_path("kale_tagged"))]) == 0
    out = capsys.readouterr().out
    assert "step preprocess (cells 7, 8)" in out
    assert "  inputs:     raw <- load_data" in out
    assert "  outputs:    test, train" in out
    assert "  resources:  pool cpu, cpu 2, memory 2Gi" in out
    assert "  runs:       retry 2, timeout 600s" in out
    dag = "DAG:\n  load_data -> preprocess\n  preprocess -> train\n  preprocess -> evaluate\n  train -> evaluate"
    assert dag in out
    assert out.strip().splitlines()[-1].startswith("version ")
    assert len(out.strip().splitlines()[-1].split()[1]) == 64


def test_errors_name_cell_step_and_line_and_exit_1(capsys):
    assert main(["compile", str(corpus_path("err_undefined"))]) == 1
    err = capsys.readouterr().err
    assert "error: cell 2, step 'join_tables', line 2: name 'lookup' is not defined" in err
    assert "error: cell 3, step 'show', line 1: name 'display'" in err


def test_json_output(capsys):
    assert main(["compile", str(corpus_path("foreach_default_item")), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["steps"]] == ["split", "work", "combine", "report"]
    assert data["steps"][1]["foreach"] == {"iterable": "shards", "item": "item"}
    assert data["errors"] == [] and data["warnings"] == []
    assert len(data["hash"]) == 64
    assert data["source"]["combine"] == {"cells": [2], "first_lines": [1], "cell_lines": [[1, 2]]}


def test_json_errors(capsys):
    assert main(["compile", str(corpus_path("err_cycle")), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [(e["code"], e["cell"], e["step"]) for e in data["errors"]] == [("cycle", 0, "first")]


def test_cells_selection(capsys):
    assert main(["compile", str(corpus_path("selected_cells")), "--cells", "2-3,5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [data["source"][s["name"]]["cells"] for s in data["steps"]] == [[2], [3], [5]]
    assert main(["compile", str(corpus_path("selected_cells")), "--cells", "3-1"]) == 2


def test_local_pools_and_flags(capsys):
    pools = local_pools()
    assert set(pools) == {"cpu"} and pools["cpu"].cpu >= 1
    assert set(local_pools(gpu=2)) == {"cpu", "gpu"}
    notebook = str(corpus_path("err_resources"))
    # No gpu pool on this machine unless the flags say so.
    assert main(["compile", notebook, "--pool-cpu", "64", "--pool-memory", "1Ti"]) == 1
    assert "pool 'gpu', which does not exist" in capsys.readouterr().err
    assert main(["compile", notebook, "--pool-cpu", "64", "--pool-memory", "1Ti", "--pool-gpu", "4"]) == 1
    err = capsys.readouterr().err
    assert "gpu" not in err.split("pool 'highmem'")[0] and "'highmem'" in err
    assert main(["compile", notebook, "--pool-cpu", "2", "--pool-memory", "1Ti", "--pool-gpu", "4"]) == 1
    assert "64 CPU cores (it offers 2)" in capsys.readouterr().err


def test_the_installed_command_runs_as_a_process():
    completed = subprocess.run(
        [sys.executable, "-m", "cellar.cli", "compile", str(corpus_path("no_tags"))],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "step_1 -> step_2" in completed.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "cellar.cli", "compile", "no-such.ipynb"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert missing.returncode == 1 and "cannot read the notebook" in missing.stderr
