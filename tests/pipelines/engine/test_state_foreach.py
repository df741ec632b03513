"""Fan-out and join: the expand task evaluates the iterable on a worker, N branch tasks are created
in bulk, later branch steps chain per index, and the join gets lists in element order."""

from __future__ import annotations

import pytest

from cellar_server.pipelines.models import Task
from tests.pipelines.engine.conftest import build_notebook, cell, fresh, states, task_of, tasks_of

pytestmark = pytest.mark.django_db


def test_foreach_expands_chains_per_index_and_joins_in_element_order(fanout_version, start_run, worker):
    run = start_run(fanout_version, {"n": 4})
    run = worker.drain(run)

    assert run.state == "succeeded", run.error
    expand = task_of(run, "square", kind="expand")
    assert expand.state == "succeeded" and len(expand.items) == 4
    squares = [task_of(run, "square", i) for i in range(4)]
    # Each branch task holds its element; the iterable itself is not an input of the branches.
    assert [t.item for t in squares] == expand.items
    assert all("items" not in t.inputs for t in squares)
    assert [worker.load(t.outputs["sq"]) for t in squares] == [0, 1, 4, 9]
    for i in range(4):
        assert task_of(run, "plus", i).inputs == {"sq": squares[i].outputs["sq"]}
    total = task_of(run, "total")
    assert total.inputs["plus"] == [task_of(run, "plus", i).outputs["plus"] for i in range(4)]
    assert total.inputs["sq"] == [t.outputs["sq"] for t in squares]
    assert worker.load(total.outputs["total"]) == 0 + 1 + 4 + 9 + 4 * 10
    assert worker.load(total.outputs["sqs"]) == [0, 1, 4, 9]
    # make, expand, 4 squares, 4 pluses, total, show
    assert (run.tasks_total, run.tasks_done) == (12, 12)


def test_branch_steps_become_ready_per_index_and_the_join_waits_for_all(fanout_version, start_run, worker):
    run = start_run(fanout_version, {"n": 3})
    (make,) = worker.take(run)
    worker.claim([make])
    worker.report([worker.execute(make)])
    (expand,) = worker.take(run)
    assert expand.item.kind == "expand" and expand.item.index is None
    worker.claim([expand])
    worker.report([worker.succeed(expand, items=[5, 6, 7])])
    # The three branch tasks exist at once (bulk), the later branch steps not yet.
    assert states(run) == {
        "make": "succeeded",
        "square (expand)": "succeeded",
        "square[0]": "queued",
        "square[1]": "queued",
        "square[2]": "queued",
    }
    branches = {a.item.index: a for a in worker.take(run)}
    worker.claim(list(branches.values()))
    worker.report([worker.execute(branches[1])])
    assert "plus[1]" in states(run) and "plus[0]" not in states(run) and "plus[2]" not in states(run)
    assert worker.load(task_of(run, "square", 1).outputs["sq"]) == 36
    worker.report([worker.execute(branches[0]), worker.execute(branches[2])])
    pluses = worker.take(run)
    assert sorted(a.item.index for a in pluses) == [0, 1, 2]
    worker.claim(pluses)
    worker.report([worker.execute(pluses[0]), worker.execute(pluses[1])])
    assert "total" not in states(run)  # one branch still running
    worker.report([worker.execute(pluses[2])])
    assert states(run)["total"] == "queued"
    run = worker.drain(run)
    assert run.state == "succeeded"
    assert worker.load(task_of(run, "total").outputs["sqs"]) == [25, 36, 49]


def test_an_empty_foreach_goes_straight_to_the_join(fanout_version, start_run, worker):
    run = worker.drain(start_run(fanout_version, {"n": 0}))
    assert run.state == "succeeded"
    assert states(run) == {
        "make": "succeeded",
        "square (expand)": "succeeded",
        "total": "succeeded",
        "show": "succeeded",
    }
    assert task_of(run, "total").inputs == {"plus": [], "sq": []}
    assert worker.load(task_of(run, "total").outputs["total"]) == 0


def test_a_wide_fanout_is_created_in_bulk_and_joined_in_order(promote, start_run, worker):
    version = promote(
        build_notebook(
            cell("n = 1200", "parameters"),
            cell("values = list(range(n))", "step:make"),
            cell("double = value * 2", "step:work", "foreach:values:value"),
            cell("total = sum(double)", "step:collect", "join"),
        ),
        "wide",
    )
    run = start_run(version)
    (make,) = worker.take(run)
    worker.claim([make])
    worker.report([worker.execute(make)])
    (expand,) = worker.take(run)
    worker.claim([expand])
    worker.report([worker.execute(expand)])
    assert Task.all_teams.filter(run_id=run.pk, step="work", kind="step").count() == 1200
    assert fresh(run).tasks_total == 2 + 1200
    # Report out of order, in several batches: the join must still list results by element.
    work = worker.take(run)
    assert work and all(a.step == "work" for a in work)
    while work:
        worker.claim(work)
        worker.report([worker.succeed(a, double=a.item.index * 2) for a in reversed(work)])
        work = [a for a in worker.take(run) if a.step == "work"]
    collect = task_of(run, "collect")
    refs = collect.inputs["double"]
    assert len(refs) == 1200
    assert [worker.load(r) for r in refs[:3] + refs[-2:]] == [0, 2, 4, 2396, 2398]
    run = worker.drain(run)
    assert run.state == "succeeded"
    assert task_of(run, "collect").outputs == {}  # nothing reads its result: no outputs
    assert len(tasks_of(run)) == run.tasks_total == run.tasks_done == 1 + 1 + 1200 + 1


def test_a_branch_step_also_waits_for_a_step_outside_the_fanout(promote, start_run, worker):
    version = promote(
        build_notebook(
            cell("items = [1, 2, 3]", "step:make"),
            cell("offset = 100", "step:slow"),
            cell("sq = item * item", "step:square", "foreach:items"),
            cell("plus = sq + offset", "step:plus"),
            cell("total = sum(plus)", "step:total", "join"),
            cell("print(total)", "step:show"),
        ),
        "outside",
    )
    run = start_run(version)
    roots = {a.step: a for a in worker.take(run)}
    assert set(roots) == {"make", "slow"}
    worker.claim(list(roots.values()))
    worker.report([worker.execute(roots["make"])])
    (expand,) = worker.take(run)
    worker.claim([expand])
    worker.report([worker.execute(expand)])
    squares = worker.take(run)
    worker.claim(squares)
    worker.report([worker.execute(a) for a in squares[:2]])
    assert not any(label.startswith("plus") for label in states(run))  # `slow` is still running
    worker.report([worker.execute(roots["slow"])])
    assert {label for label in states(run) if label.startswith("plus")} == {"plus[0]", "plus[1]"}
    worker.report([worker.execute(squares[2])])
    assert states(run)["plus[2]"] == "queued"
    run = worker.drain(run)
    assert run.state == "succeeded"
    assert task_of(run, "plus", 1).inputs == {
        "sq": task_of(run, "square", 1).outputs["sq"],
        "offset": task_of(run, "slow").outputs["offset"],
    }
