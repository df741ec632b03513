"""A promoted notebook on the real engine (web + control worker + pool agent + executors): the step
that declared a secret reads it, the one that did not is refused, and the value never reaches the
task's log or any process's log."""

from __future__ import annotations

import pytest

from cellar_server.pipelines.models import Task
from tests.data.conftest import SECRET, SECRET_VALUE
from tests.engine_e2e.conftest import engine, stack  # noqa: F401  (the real-process stack)
from tests.engine_e2e.test_engine_e2e import load, promote, the_run
from tests.factories import mint_token
from tests.pipelines.engine.conftest import build_notebook, cell

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

SNEAKY = """
name = "warehouse" + "-password"
try:
    cellar.secret(name)
    outcome = "read it"
except Exception as exc:
    outcome = str(exc)
print(outcome)
"""


def test_steps_get_only_declared_secrets_and_logs_stay_clean(engine, team, members, secret, tmp_path):  # noqa: F811
    notebook = build_notebook(
        cell("import cellar", "imports"),
        cell(f"pw = cellar.secret('{SECRET}')\nprint('got', pw, len(pw))\nsize = len(pw)", "step:use"),
        cell(SNEAKY, "step:sneaky"),
    )
    token = mint_token(team, members["editor"])[1]
    done = promote(engine, token, notebook, "secrets", tmp_path, "--run", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr + engine.output("control")[-3000:]
    run = the_run("secrets")
    use = Task.all_teams.get(run_id=run.pk, step="use")
    sneaky = Task.all_teams.get(run_id=run.pk, step="sneaky")
    used_log = load(engine, use.logs["stdout"])
    assert used_log.strip() == f"got *** {len(SECRET_VALUE)}"  # it was read, and masked in the log
    assert "secret_not_declared" in load(engine, sneaky.logs["stdout"])
    for name in engine.logs:
        assert SECRET_VALUE not in engine.output(name), name
    assert SECRET_VALUE not in done.stdout + done.stderr
