"""The local runner end to end on hand-built specs: order, parameters, fan-out, failures, cache."""

from __future__ import annotations

import json

import pytest

from cellar.pipelines.runner import ParameterError, run_pipeline
from cellar.pipelines.spec import Foreach, Parameter, Step, StepSource


def states(run):
    return {t.label: t.state for t in run.tasks if t.kind == "step"}


def linear(make_spec, *, extra_code=""):
    return make_spec(
        [
            Step(
                name="load",
                code="rows = list(range(n))\nprint('loaded', len(rows))",
                outputs=["rows"],
                parameters=["n"],
            ),
            Step(
                name="total",
                code="total = sum(rows) * scale" + extra_code,
                inputs={"rows": "load"},
                outputs=["total"],
                upstream=["load"],
                parameters=["scale"],
            ),
            Step(
                name="report",
                code="line = f'total={total}'",
                inputs={"total": "total"},
                outputs=["line"],
                upstream=["total"],
            ),
        ],
        [Parameter("n", 4, "int"), Parameter("scale", 1.0, "float")],
    )


def test_linear_pipeline_with_defaults(make_spec, local_dir):
    run = run_pipeline(linear(make_spec), progress=False)  # the folder comes from CELLAR_LOCAL_DIR
    assert run.ok, run.error
    assert states(run) == {"load": "succeeded", "total": "succeeded", "report": "succeeded"}
    assert run.load("report", "line") == "total=6.0"
    assert run.directory.parent == local_dir.resolve() / "runs"
    assert run.log("load") == "loaded 4\n"

    record = json.loads((run.directory / "run.json").read_text())
    assert record["state"] == "succeeded" and record["spec_hash"] == linear(make_spec).content_hash()
    assert record["parameters"] == {"n": 4, "scale": 1.0}
    by_step = {t["step"]: t for t in record["tasks"]}
    line_ref = by_step["report"]["outputs"]["line"]
    assert line_ref["serializer"] == "json"
    # A short string travels inside its reference (INLINE_MAX_BYTES), with its digest, not as a blob.
    assert line_ref["inline"] == '"total=6.0"'
    assert not (local_dir / "teams" / "local" / "data" / line_ref["sha256"][:2] / line_ref["sha256"]).exists()
    spec = json.loads((run.directory / "spec.json").read_text())
    assert spec["hash"] == run.spec_hash


def test_parameters_are_overridden_and_parsed_by_type(make_spec, local_dir):
    run = run_pipeline(linear(make_spec), {"n": "10", "scale": "0.5"}, progress=False)
    assert run.ok
    assert run.parameters == {"n": 10, "scale": 0.5}
    assert run.load("total", "total") == 22.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nn": "3"}, r"unknown parameter 'nn' \(known parameters: n, scale\)"),
        ({"n": "three"}, r"parameter 'n' expects an integer"),
        ({"n": 2.5}, r"parameter 'n' is a int"),
    ],
    ids=["unknown", "bad-text", "bad-value"],
)
def test_bad_parameters_are_refused_before_anything_runs(make_spec, local_dir, overrides, message):
    with pytest.raises(ParameterError, match=message):
        run_pipeline(linear(make_spec), overrides, progress=False)
    assert not (local_dir / "runs").exists()


def fanout_spec(make_spec, item_name=None):
    foreach = Foreach("grid", item_name) if item_name else Foreach("grid")
    item = item_name or "item"
    return make_spec(
        [
            Step(name="prepare", code="offset = 100", outputs=["offset"]),
            Step(
                name="work",
                # Later elements finish first, so completion order is not element order.
                code=f"import time\ntime.sleep(0.05 * (len(grid) - grid.index({item})))\nvalue = {item} + offset",
                inputs={"offset": "prepare"},
                outputs=["value"],
                upstream=["prepare"],
                parameters=["grid"],
                foreach=foreach,
                branch_of="work",
            ),
            Step(
                name="square",
                code="sq = value * value",
                inputs={"value": "work"},
                outputs=["sq"],
                upstream=["work"],
                branch_of="work",
            ),
            Step(
                name="collect",
                code="values, squares = value, sq",
                inputs={"value": "work", "sq": "square"},
                outputs=["values", "squares"],
                upstream=["square", "work"],
                join=True,
            ),
        ],
        [Parameter("grid", [3, 1, 2], "list")],
    )


@pytest.mark.parametrize("item_name", [None, "g"], ids=["item", "named-item"])
def test_foreach_and_join_give_lists_in_element_order(make_spec, local_dir, item_name):
    run = run_pipeline(fanout_spec(make_spec, item_name), {"grid": "[5, 3, 4, 1]"}, workers=3, progress=False)
    assert run.ok, run.error
    assert run.load("collect", "values") == [105, 103, 104, 101]
    assert run.load("collect", "squares") == [105**2, 103**2, 104**2, 101**2]
    assert [t.index for t in run.branch_tasks("square")] == [0, 1, 2, 3]
    assert run.load("square", "sq", index=2) == 104**2
    record = json.loads((run.directory / "run.json").read_text())
    expansion = next(t for t in record["tasks"] if t["kind"] == "foreach")
    assert expansion["items"] == 4 and expansion["state"] == "succeeded"


def test_an_empty_foreach_joins_empty_lists(make_spec, local_dir):
    run = run_pipeline(fanout_spec(make_spec), {"grid": "[]"}, progress=False)
    assert run.ok, run.error
    assert run.load("collect", "values") == [] and run.branch_tasks("work") == []


def failing_fanout(make_spec):
    source = {"work": StepSource(cells=[4, 5], first_lines=[1, 3])}
    return make_spec(
        [
            Step(
                name="work",
                code="x = item * 2\n\nif item == 2:\n    raise ValueError(f'item {item} is bad')\nvalue = x",
                outputs=["value"],
                parameters=["grid"],
                foreach=Foreach("grid"),
                branch_of="work",
            ),
            Step(
                name="collect",
                code="n = len(value)",
                inputs={"value": "work"},
                outputs=["n"],
                upstream=["work"],
                join=True,
            ),
        ],
        [Parameter("grid", [1, 2, 3, 4], "list")],
        source,
    )


def test_a_failing_branch_fails_the_run_names_the_cell_and_line_and_lets_other_branches_finish(make_spec, local_dir):
    run = run_pipeline(failing_fanout(make_spec), workers=4, progress=False)
    assert not run.ok and run.state == "failed"
    assert states(run) == {
        "work[0]": "succeeded",
        "work[1]": "failed",
        "work[2]": "succeeded",
        "work[3]": "succeeded",
        "collect": "upstream_failed",
    }
    error = run.error
    assert (error.step, error.cell, error.line) == ("work", 5, 2)
    assert error.exc_type == "ValueError" and error.message == "item 2 is bad"
    assert "cell 5, line 2" in error.format_traceback()
    record = json.loads((run.directory / "run.json").read_text())
    assert record["state"] == "failed" and record["error"]["cell"] == 5


def three_steps(make_spec, *, broken="a"):
    return make_spec(
        [
            Step(name="a", code="raise RuntimeError('a broke')" if broken == "a" else "x = 1", outputs=["x"]),
            Step(name="b", code="y = 2", outputs=["y"]),
            Step(name="c", code="z = x + 1", inputs={"x": "a"}, outputs=["z"], upstream=["a"]),
        ]
    )


def test_after_a_failure_no_new_work_starts(make_spec, local_dir):
    run = run_pipeline(three_steps(make_spec), workers=1, progress=False)
    assert states(run) == {"a": "failed", "b": "cancelled", "c": "upstream_failed"}


def test_keep_going_runs_what_does_not_depend_on_the_failure(make_spec, local_dir):
    run = run_pipeline(three_steps(make_spec), workers=1, progress=False, keep_going=True)
    assert states(run) == {"a": "failed", "b": "succeeded", "c": "upstream_failed"}
    assert run.state == "failed"


def test_a_worker_that_dies_fails_its_task_with_an_explanation(make_spec, local_dir):
    spec = make_spec([Step(name="crash", code="import os\nos._exit(3)")])
    run = run_pipeline(spec, progress=False)
    assert states(run) == {"crash": "failed"}
    assert "worker process" in run.error.message


def test_a_rerun_hits_the_cache_and_a_changed_parameter_reruns_only_its_readers(make_spec, local_dir):
    spec = linear(make_spec)
    first = run_pipeline(spec, progress=False)
    again = run_pipeline(spec, progress=False)
    assert states(again) == {"load": "cached", "total": "cached", "report": "cached"}
    assert again.task("report").outputs == first.task("report").outputs
    assert again.load("report", "line") == "total=6.0"

    changed = run_pipeline(spec, {"scale": "2"}, progress=False)
    assert states(changed) == {"load": "cached", "total": "succeeded", "report": "succeeded"}
    assert changed.load("report", "line") == "total=12.0"

    forced = run_pipeline(spec, progress=False, cache=False)
    assert set(states(forced).values()) == {"succeeded"}


def test_a_cache_off_step_always_runs_and_its_unchanged_output_keeps_downstream_cached(make_spec, local_dir):
    steps = linear(make_spec).steps
    spec = make_spec(
        [steps[0], Step(**{**steps[1].__dict__, "cache": False, "tags": ["cache:off"]}), steps[2]],
        linear(make_spec).parameters,
    )
    run_pipeline(spec, progress=False)
    again = run_pipeline(spec, progress=False)
    assert states(again) == {"load": "cached", "total": "succeeded", "report": "cached"}


def test_a_changed_step_reruns_it_and_what_reads_it(make_spec, local_dir):
    run_pipeline(linear(make_spec), progress=False)
    edited = run_pipeline(linear(make_spec, extra_code=" + 1"), progress=False)
    assert states(edited) == {"load": "cached", "total": "succeeded", "report": "succeeded"}
    assert edited.load("report", "line") == "total=7.0"


def test_foreach_branches_are_cached_per_element(make_spec, local_dir):
    spec = fanout_spec(make_spec)
    run_pipeline(spec, {"grid": "[1, 2]"}, progress=False)
    grown = run_pipeline(spec, {"grid": "[1, 2, 3]"}, progress=False)
    # `work` reads the whole grid (a parameter), so it reruns; `square` sees the same values for 0 and 1.
    assert [t.state for t in grown.branch_tasks("square")] == ["cached", "cached", "succeeded"]
    assert grown.load("collect", "squares") == [101**2, 102**2, 103**2]


def test_a_class_defined_in_the_notebook_crosses_steps(make_spec, local_dir):
    point = "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
    spec = make_spec(
        [
            Step(name="make", prelude=point, code="p = Point(3, 4)", outputs=["p"]),
            Step(
                name="use",
                prelude=point,
                code="d = (p.x**2 + p.y**2) ** 0.5",
                inputs={"p": "make"},
                outputs=["d"],
                upstream=["make"],
            ),
        ]
    )
    run = run_pipeline(spec, progress=False)
    assert run.ok, run.error
    assert run.load("use", "d") == 5.0


def test_progress_reports_reach_a_callable(make_spec, local_dir):
    seen = []
    run_pipeline(fanout_spec(make_spec), progress=seen.append)
    assert seen[-1].finished and seen[-1].done == seen[-1].total == 8  # prepare, 3 work, 3 square, collect
    ended = [label for state in seen for label, _, _ in state.ended]
    expected = ["prepare", "collect"] + [f"{step}[{i}]" for step in ("work", "square") for i in range(3)]
    assert sorted(ended) == sorted(expected)


def test_retry_runs_a_failed_task_again(make_spec, local_dir, tmp_path):
    marker = tmp_path / "attempted"
    flaky = (
        "import pathlib\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    raise ConnectionError('the first attempt fails')\n"
        "value = 42"
    )
    spec = make_spec(
        [
            Step(name="flaky", code=flaky, outputs=["value"], retry=1),
            Step(name="never", code="raise ValueError('always')", retry=2),
        ]
    )
    run = run_pipeline(spec, progress=False, keep_going=True)
    assert states(run) == {"flaky": "succeeded", "never": "failed"}
    assert run.task("flaky").attempts == 2 and run.task("never").attempts == 3
    assert run.load("flaky", "value") == 42
    assert "--- attempt 2 ---" in run.log("flaky", stream="stderr")
    assert run.error.step == "never"


def test_a_step_past_its_timeout_fails_at_the_line_that_was_running(make_spec, local_dir):
    spec = make_spec(
        [Step(name="slow", code="import time\nx = 1\ntime.sleep(60)\ny = 2", timeout=1, tags=["timeout:1"])],
        source={"slow": StepSource(cells=[2], first_lines=[1])},
    )
    run = run_pipeline(spec, progress=False)
    assert states(run) == {"slow": "failed"}
    assert run.error.exc_type == "StepTimeout" and "timeout of 1s" in run.error.message
    assert (run.error.cell, run.error.line) == (2, 3)


def test_a_step_without_outputs_runs_every_time(make_spec, local_dir):
    spec = make_spec(
        [
            Step(name="make", code="n = 2", outputs=["n"]),
            Step(name="report", code="print('n is', n)", inputs={"n": "make"}, upstream=["make"]),
        ]
    )
    run_pipeline(spec, progress=False)
    again = run_pipeline(spec, progress=False)
    assert states(again) == {"make": "cached", "report": "succeeded"}
    assert again.log("report") == "n is 2\n"  # what it is run for
