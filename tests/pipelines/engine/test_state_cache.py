"""The step cache: a second run of the same version is served from the first by pointer; `cache:off`
steps and runs started with use_cache=False run again; a changed parameter reruns what reads it."""

from __future__ import annotations

import pytest

from cellar_server.pipelines.models import StepCacheEntry
from tests.pipelines.engine.conftest import build_notebook, cell, fanout_notebook, states, task_of

pytestmark = pytest.mark.django_db


def test_a_second_run_is_served_from_the_cache_by_pointer(linear_version, start_run, worker):
    first = worker.drain(start_run(linear_version))
    # `report` has no outputs (nothing reads it): it exists for its side effects and always runs.
    assert StepCacheEntry.all_teams.count() == 2
    second = start_run(linear_version)
    # Both cacheable steps are done at creation, without a worker: only `report` is queued.
    assert states(second) == {"load": "cached", "double": "cached", "report": "queued"}
    for step in ("load", "double"):
        assert task_of(second, step).outputs == task_of(first, step).outputs
        assert task_of(second, step).cache_key == task_of(first, step).cache_key != ""
        assert task_of(second, step).attempt == 0 and not task_of(second, step).attempts.exists()
    assert task_of(second, "report").inputs == task_of(first, "report").inputs
    assert (second.tasks_total, second.tasks_done) == (3, 2)
    second = worker.drain(second)
    assert second.state == "succeeded" and second.tasks_done == 3


def test_a_changed_parameter_reruns_only_the_steps_that_read_it(linear_version, start_run, worker):
    worker.drain(start_run(linear_version, {"alpha": 2}))
    run = start_run(linear_version, {"alpha": 3})
    assert states(run) == {"load": "cached", "double": "queued"}
    run = worker.drain(run)
    assert worker.load(task_of(run, "double").outputs["y"]) == 63


def test_use_cache_false_runs_every_step_and_still_records_entries(linear_version, start_run, worker):
    worker.drain(start_run(linear_version))
    run = start_run(linear_version, use_cache=False)
    assert states(run) == {"load": "queued"}
    run = worker.drain(run)
    assert set(states(run).values()) == {"succeeded"} and not run.use_cache
    assert StepCacheEntry.all_teams.count() == 2  # the same keys: nothing new, nothing doubled


def test_a_cache_off_step_runs_again_and_its_successors_hit_on_equal_outputs(promote, start_run, worker):
    version = promote(
        build_notebook(
            cell("x = 20", "step:load", "cache:off"),
            cell("y = x + 1", "step:add"),
            cell("print(y)", "step:show"),
        ),
        "cacheoff",
    )
    first = worker.drain(start_run(version))
    second = start_run(version)
    assert states(second) == {"load": "queued"}
    second = worker.drain(second)
    # load ran again and produced the same bytes: the same hash, so `add` is a hit.
    assert states(second) == {"load": "succeeded", "add": "cached", "show": "succeeded"}
    assert task_of(second, "add").outputs == task_of(first, "add").outputs


def test_foreach_branches_hit_per_element(promote, start_run, worker):
    version = promote(fanout_notebook(), "fan")
    worker.drain(start_run(version, {"n": 3}))
    run = start_run(version, {"n": 4})
    # The expansion always runs on a worker (its elements are user values the server never reads).
    assert states(run) == {"make": "queued"}
    run = worker.drain(run)
    assert run.state == "succeeded"
    assert [task_of(run, "square", i).state for i in range(4)] == ["cached", "cached", "cached", "succeeded"]
    assert [task_of(run, "plus", i).state for i in range(4)] == ["cached", "cached", "cached", "succeeded"]
    assert worker.load(task_of(run, "total").outputs["total"]) == 0 + 1 + 4 + 9 + 40


def test_a_hit_needs_every_declared_output(linear_version, start_run, worker, team):
    worker.drain(start_run(linear_version))
    entry = StepCacheEntry.all_teams.get(key=task_of(start_run(linear_version), "load").cache_key)
    entry.outputs = {}
    entry.save(update_fields=["outputs"])
    run = start_run(linear_version)
    assert states(run) == {"load": "queued"}


def test_a_cached_step_points_back_to_the_run_that_computed_it(linear_version, start_run, worker, team):
    from cellar_server.core.scoping import team_scope
    from cellar_server.pipelines.selectors import reused_tracking_runs

    first = worker.drain(start_run(linear_version))
    second = worker.drain(start_run(linear_version))
    third = start_run(linear_version, {"alpha": 3})  # `load` still cached, `double` reruns
    assert first.tracking_run and len({first.tracking_run, second.tracking_run, third.tracking_run}) == 3
    with team_scope(team.id):
        reused = reused_tracking_runs(tracking_runs=[first.tracking_run, second.tracking_run, third.tracking_run])
    # The first run computed everything; the later ones reused its results (both read them from it).
    assert reused == {second.tracking_run: [first.tracking_run], third.tracking_run: [first.tracking_run]}
    with team_scope(team.id + 1000):  # another team sees nothing of it
        assert reused_tracking_runs(tracking_runs=[second.tracking_run]) == {}


def test_a_run_served_from_the_cache_inherits_what_the_cached_steps_read(linear_version, start_run, worker, team):
    from cellar_server.core.scoping import team_scope
    from cellar_server.data.models import Dataset, DatasetInput
    from cellar_server.data.selectors import datasets_for_runs
    from cellar_server.tracking.models import Run

    first = worker.drain(start_run(linear_version))
    with team_scope(team.id):
        dataset = Dataset.objects.create(team=team, name="scans", uri="sql://warehouse", digest="sha256:ab", kind="sql")
        DatasetInput.objects.create(team=team, dataset=dataset, run=Run.objects.get(run_uuid=first.tracking_run))
    second = worker.drain(start_run(linear_version))  # `load` and `double` come from the first run
    found = datasets_for_runs(team=team, run_ids=[first.tracking_run, second.tracking_run])
    assert [(d["name"], d["reused_from"]) for d in found[first.tracking_run]] == [("scans", None)]
    assert [(d["name"], d["reused_from"]) for d in found[second.tracking_run]] == [("scans", first.tracking_run)]
