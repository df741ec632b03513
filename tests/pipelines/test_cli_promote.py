"""`cellar promote` as a user runs it: a subprocess against a live server with a minted token.

The printed id is the stored version's and the local compile's content hash; a second
promote prints the same id. The runs API does not exist yet (the engine is the next issue):
`--run` says so and exits 2; following a run is tested against a stand-in for the runs
endpoint that speaks the contract `follow_run` expects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cellar.client import Client
from cellar.pipelines.cli_promote import follow_run
from cellar.pipelines.compiler import compile_notebook
from cellar_server.pipelines.models import Pipeline, PipelineRun, PipelineVersion
from tests.factories import mint_token
from tests.pipelines.conftest import churn_notebook, code_cell, notebook

pytestmark = pytest.mark.django_db(transaction=True)


def write(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb))
    return path


def cellar(*args: str, url: str, token: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CELLAR_")}
    environ.update({"CELLAR_URL": url, "CELLAR_TOKEN": token, **env})
    return subprocess.run(
        [sys.executable, "-m", "cellar.cli", *args], capture_output=True, text=True, timeout=120, env=environ
    )


@pytest.fixture
def server(live_server, team, members):
    tokens = {role: mint_token(team, members[role])[1] for role in ("editor", "admin")}
    return live_server.url, tokens


def test_promote_prints_the_version_id_and_the_same_id_again(server, tmp_path):
    url, tokens = server
    path = write(tmp_path / "churn.ipynb", churn_notebook())
    first = cellar("promote", str(path), "--pipeline", "churn", url=url, token=tokens["editor"])
    assert first.returncode == 0, first.stderr
    printed = first.stdout.strip()
    stored = PipelineVersion.all_teams.get()
    assert printed == stored.hash
    assert printed == compile_notebook(path).spec.content_hash()
    assert "Created version 1 of pipeline 'churn' (5 steps)" in first.stderr
    assert f"{url}/t/acme/pipelines/churn/versions/1/" in first.stderr
    assert stored.notebook == "churn.ipynb" and stored.created_by.username == "editor-user"
    second = cellar("promote", str(path), "--pipeline", "churn", url=url, token=tokens["editor"])
    assert second.returncode == 0 and second.stdout.strip() == printed
    assert "Existing version 1" in second.stderr
    assert PipelineVersion.all_teams.count() == 1


def test_outputs_do_not_change_the_version(server, tmp_path):
    url, tokens = server
    nb = churn_notebook()
    clean = cellar("promote", str(write(tmp_path / "a.ipynb", nb)), "--pipeline", "p", url=url, token=tokens["editor"])
    nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * 100_000}]
    nb["cells"][3]["execution_count"] = 7
    ran = cellar("promote", str(write(tmp_path / "b.ipynb", nb)), "--pipeline", "p", url=url, token=tokens["editor"])
    assert clean.returncode == ran.returncode == 0
    assert clean.stdout == ran.stdout


def test_selected_cells_and_production(server, tmp_path):
    url, tokens = server
    path = write(tmp_path / "churn.ipynb", churn_notebook())
    refused = cellar("promote", str(path), "--pipeline", "churn", "--production", url=url, token=tokens["editor"])
    assert refused.returncode == 1 and "pipelines:promote" in refused.stderr
    assert not Pipeline.all_teams.exists()
    done = cellar(
        "promote", str(path), "--pipeline", "churn", "--cells", "3-4", "--production", url=url, token=tokens["admin"]
    )
    assert done.returncode == 0, done.stderr
    version = PipelineVersion.all_teams.get(hash=done.stdout.strip())
    assert version.step_count == 2 and "Production is version 1" in done.stderr
    assert Pipeline.all_teams.get().production_id == version.pk


def test_problems_name_cell_step_and_line_and_nothing_is_sent(server, tmp_path):
    url, tokens = server
    nb = notebook(code_cell("x = 1", "step:a"), code_cell("y = x + missing_name", "step:b"))
    result = cellar(
        "promote", str(write(tmp_path / "bad.ipynb", nb)), "--pipeline", "p", url=url, token=tokens["editor"]
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "cell 1, step 'b', line 1: " in result.stderr and "missing_name" in result.stderr
    assert not Pipeline.all_teams.exists()


def test_a_package_the_server_pool_lacks_is_the_servers_error(server, tmp_path, settings):
    """The local interpreter has numpy; a pool without it (seen through a sent lock) refuses."""
    url, tokens = server
    nb = notebook(code_cell("import surely_not_installed_pkg", "imports"), code_cell("x = 1", "step:a"))
    result = cellar(
        "promote", str(write(tmp_path / "nb.ipynb", nb)), "--pipeline", "p", url=url, token=tokens["editor"]
    )
    assert result.returncode == 1
    assert "surely_not_installed_pkg" in result.stderr and "cell 1, step 'a'" in result.stderr


def test_run_starts_a_run_of_the_promoted_version_with_typed_parameters(server, tmp_path):
    # Without --wait the CLI returns once the run is queued; following it needs the
    # engine's processes (tests/engine_e2e).
    url, tokens = server
    path = write(tmp_path / "churn.ipynb", churn_notebook())
    result = cellar(
        "promote", str(path), "--pipeline", "churn", "--run", "-p", "threshold=0.9", url=url, token=tokens["editor"]
    )
    assert result.returncode == 0, result.stderr
    version = PipelineVersion.all_teams.get()
    assert result.stdout.strip() == version.hash
    run = PipelineRun.all_teams.get()
    assert run.version_id == version.pk and run.parameters["threshold"] == 0.9
    assert f"Started run {run.number} of version 1." in result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["-p", "threshold=0.9"], "--wait and -p need --run"),
        (["--cells", "2-x"], "--cells 2-x"),
        (["--run", "-p", "nope=1"], "no parameter 'nope'"),
        (["--run", "-p", "folds=many"], "parameter 'folds' is a int"),
    ],
    ids=["param-without-run", "bad-cells", "unknown-param", "bad-param-type"],
)
def test_bad_usage_is_refused_before_sending(server, tmp_path, args, message):
    url, tokens = server
    path = write(tmp_path / "churn.ipynb", churn_notebook())
    result = cellar("promote", str(path), "--pipeline", "churn", *args, url=url, token=tokens["editor"])
    assert result.returncode in (1, 2) and message in result.stderr, result.stderr
    assert not Pipeline.all_teams.exists()


def test_bad_token_unreachable_server_and_bad_name(server, tmp_path):
    url, tokens = server
    path = write(tmp_path / "churn.ipynb", churn_notebook())
    bad = cellar("promote", str(path), "--pipeline", "churn", url=url, token="cellar_000000000000_nope")
    assert bad.returncode == 1 and "refused the token" in bad.stderr
    away = cellar("promote", str(path), "--pipeline", "churn", url="http://127.0.0.1:9", token=tokens["editor"])
    assert away.returncode == 2 and "Cannot reach" in away.stderr
    name = cellar("promote", str(path), "--pipeline", "Not A Name", url=url, token=tokens["editor"])
    assert name.returncode == 1 and "invalid_pipeline_name" in name.stderr
    flags = cellar(
        "promote", str(path), "--pipeline", "churn", "--url", url, "--token", tokens["editor"], url="", token=""
    )
    assert flags.returncode == 0, flags.stderr


def test_team_must_match_the_token(server, tmp_path):
    url, tokens = server
    path = write(tmp_path / "churn.ipynb", churn_notebook())
    result = cellar("promote", str(path), "--pipeline", "churn", "--team", "rival", url=url, token=tokens["editor"])
    assert result.returncode == 1 and "CELLAR_TEAM is 'rival'" in result.stderr


# --- following a run: the runs endpoint's contract, served by a stand-in until the engine exists -----------


class _Runs(BaseHTTPRequestHandler):
    states: list[dict] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def runs_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Runs)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("final,code", [("succeeded", 0), ("failed", 1), ("cancelled", 1)])
def test_follow_run_polls_to_the_end(runs_server, capsys, final, code):
    _Runs.states = [
        {"id": "r1", "state": "running", "progress": {"succeeded": 1, "running": 2}},
        {"id": "r1", "state": "running", "progress": {"succeeded": 3, "running": 0}},
        {"id": "r1", "state": final},
    ]
    client = Client(runs_server, "cellar_x_y")
    result = follow_run(client, "teams/acme/pipelines/churn/runs/r1/", {"id": "r1", "state": "queued"}, interval=0.01)
    err = capsys.readouterr().err
    assert result == code
    assert "queued" in err and "running · 1 succeeded, 2 running" in err and f"Run r1 {final}." in err


def test_client_conveniences(server):
    url, tokens = server
    editor, admin = Client(url, tokens["editor"]), Client(url, tokens["admin"])
    first = editor.pipeline_version_create("acme", "churn", churn_notebook(), notebook_name="churn.ipynb")
    second = editor.pipeline_version_create("acme", "churn", churn_notebook(threshold=0.9))
    assert first["created"] and second["number"] == 2
    assert [p["name"] for p in editor.pipelines("acme")] == ["churn"]
    assert [v["number"] for v in editor.pipeline_versions("acme", "churn")] == [2, 1]
    assert editor.pipeline_version("acme", "churn", first["id"][:8])["number"] == 1
    assert editor.pipeline_diff("acme", "churn", 1, 2)["parameters"][0]["name"] == "threshold"
    assert admin.pipeline_promote("acme", "churn", 1)["moved"] is True
    assert admin.pipeline_promote("acme", "churn", second["id"])["current"]["number"] == 2
    assert admin.pipeline_rollback("acme", "churn")["current"]["number"] == 1
    assert [m["kind"] for m in editor.pipeline_production("acme", "churn")["results"]] == [
        "rollback",
        "promote",
        "promote",
    ]
