"""A linear run from start to success: parameters resolved and typed, outputs passed as inputs,
counters, the tracking run, run states; unknown parameters refused with the known names."""

from __future__ import annotations

import pytest

from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.pipelines.models import PipelineRun, Task
from cellar_server.tracking.models import Experiment, Param, Run, RunTag
from tests.pipelines.engine.conftest import fresh, states, task_of, tasks_of

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


def test_parameters_are_resolved_and_typed(linear_version, start_run):
    run = start_run(linear_version, {"alpha": 5, "label": "nightly"})
    assert run.parameters == {"alpha": 5, "label": "nightly"}
    assert start_run(linear_version).parameters == {"alpha": 2, "label": "run"}
    assert start_run(linear_version, {"alpha": "7"}).parameters["alpha"] == 7  # text from a form or -p


@pytest.mark.parametrize(
    "parameters,needle",
    [
        ({"beta": 1}, "unknown parameter 'beta' (known parameters: alpha, label)"),
        ({"alpha": "many"}, "parameter 'alpha' expects an integer"),
        ({"alpha": 1.5}, "parameter 'alpha' is a int"),
        ({"alpha": [1]}, "parameter 'alpha' is a int"),
    ],
    ids=["unknown", "not-an-int", "float-for-int", "list-for-int"],
)
def test_bad_parameters_are_refused_and_nothing_is_written(linear_version, start_run, parameters, needle):
    with pytest.raises(ServiceError) as caught:
        start_run(linear_version, parameters)
    assert caught.value.code == "invalid_parameters" and needle in caught.value.message
    assert not PipelineRun.all_teams.exists() and not Task.all_teams.exists()


def test_every_run_is_a_tracking_run(linear_version, start_run, worker, team, members):
    first = start_run(linear_version, {"alpha": 4})
    second = start_run(linear_version)
    assert (first.number, second.number) == (1, 2)
    with team_scope(team.id):
        experiment = Experiment.objects.get(name="pipeline:linear")
        tracked = Run.objects.get(run_uuid=first.tracking_run)
        tags = dict(RunTag.objects.filter(run=tracked).values_list("key", "value"))
        params = dict(Param.objects.filter(run=tracked).values_list("key", "value"))
        assert Run.objects.filter(experiment=experiment).count() == 2
    assert tracked.experiment_id == experiment.pk and tracked.name == "linear #1"
    assert tags["cellar.pipeline"] == "linear" and tags["cellar.version"] == linear_version.hash
    assert tags["cellar.source"] == "pipeline" and tracked.source_type == "pipeline"
    assert params == {"alpha": "4", "label": '"run"'}
    assert tracked.status == "RUNNING" and tracked.user_id == members["editor"].pk
    worker.drain(first)
    tracked.refresh_from_db()
    assert tracked.status == "FINISHED" and tracked.end_time is not None


def test_the_run_is_running_once_a_worker_claims_its_first_task(linear_version, start_run, worker):
    run = start_run(linear_version)
    assigned = worker.take(run)
    assert fresh(run).state == "queued" and fresh(run).started_at is None
    assert worker.claim(assigned)["claimed"] == [assigned[0].item.task]
    run = fresh(run)
    assert run.state == "running" and run.started_at is not None
    task = task_of(run, "load")
    assert task.state == "running" and task.worker == "worker-1" and task.lease_expires_at is not None


def test_the_same_version_runs_twice_as_two_numbered_runs_on_their_own_tasks(linear_version, start_run, worker):
    first = worker.drain(start_run(linear_version, use_cache=False))
    second = worker.drain(start_run(linear_version, use_cache=False))
    assert first.state == second.state == "succeeded"
    assert {t.run_id for t in tasks_of(second)} == {second.pk} and len(tasks_of(second)) == 3
