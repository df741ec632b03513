"""A linear run from start to success: parameters resolved and typed, outputs passed as inputs,
counters, the tracking run, run states; unknown parameters refused with the known names."""

from __future__ import annotations

import pytest

from tests.pipelines.engine.conftest import states, task_of, tasks_of

pytestmark = pytest.mark.django_db


def test_a_linear_run_succeeds_with_outputs_passed_as_inputs(linear_version, start_run, worker):
    run = start_run(linear_version, {"alpha": "3"})
    assert run.number == 1 and run.state == "queued" and run.parameters == {"alpha": 3, "label": "run"}
    # Only the root exists: tasks are created when they are ready.
    assert states(run) == {"load": "queued"}
    assert (run.tasks_total, run.tasks_done, run.tasks_failed) == (1, 0, 0)

    run = worker.drain(run)

    assert run.state == "succeeded" and run.error is None
    assert states(run) == {"load": "succeeded", "double": "succeeded", "report": "succeeded"}
    load, double = task_of(run, "load"), task_of(run, "double")
    assert double.inputs == {"x": load.outputs["x"]}
    assert task_of(run, "report").inputs == {"y": double.outputs["y"]}
    assert worker.load(double.outputs["y"]) == 63
    assert (run.tasks_total, run.tasks_done, run.tasks_failed) == (3, 3, 0)
    assert run.started_at is not None and run.ended_at is not None
    for task in tasks_of(run):
        attempts = list(task.attempts.all())
        assert [a.state for a in attempts] == ["succeeded"] and task.attempt == 1
