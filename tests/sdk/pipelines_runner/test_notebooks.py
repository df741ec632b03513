"""The local runner on real notebooks, compiled by the real compiler."""

from __future__ import annotations

import json

import pytest

from cellar.pipelines.compiler import compile_notebook
from cellar.pipelines.runner import run_pipeline


def compile_path(path, **kwargs):
    return compile_notebook(path, notebook_name=path.name, **kwargs).spec


def states(run):
    return {t.label: t.state for t in run.tasks if t.kind == "step"}


def test_iris_fan_out_over_c_values_then_pick_the_best(iris_notebook, local_dir):
    spec = compile_path(iris_notebook)
    run = run_pipeline(spec, {"C_values": "[10.0, 0.01, 1.0]"}, workers=2, progress=False)
    assert run.ok, run.error and run.error.format_traceback()
    assert states(run) == {
        "load": "succeeded",
        "train[0]": "succeeded",
        "train[1]": "succeeded",
        "train[2]": "succeeded",
        "pick": "succeeded",
        "evaluate": "succeeded",
    }
    report = json.loads(run.log("evaluate"))  # the last step's values are what it prints or logs
    tried = report["tried"]
    assert [c for c, _ in tried] == [10.0, 0.01, 1.0]  # element order, not completion order
    scores = [run.load("train", "score", index=i) for i in range(3)]
    assert [s for _, s in tried] == scores
    assert report["best_C"] == max(tried, key=lambda t: (t[1], -t[0]))[0]
    assert run.task("pick").outputs["best_model"].serializer == "joblib"
    assert run.task("load").outputs["X_train"].serializer == "npy"
    assert 0.8 < report["accuracy"] <= 1.0
    assert "train rows 105" in run.log("load")
    assert run.spec_hash == compile_path(iris_notebook).content_hash()


def test_rerun_is_cached_and_a_new_c_value_trains_only_itself(iris_notebook, local_dir):
    spec = compile_path(iris_notebook)
    run_pipeline(spec, {"C_values": "[0.1, 1.0]"}, progress=False)
    again = run_pipeline(spec, {"C_values": "[0.1, 1.0]"}, progress=False)
    evaluate = states(again).pop("evaluate")
    assert set(states(again).values()) - {evaluate} == {"cached"}
    assert evaluate == "succeeded"  # no outputs: it runs for what it prints, every time
    more = run_pipeline(spec, {"C_values": "[0.1, 1.0, 5.0]"}, progress=False)
    assert [t.state for t in more.branch_tasks("train")] == ["cached", "cached", "succeeded"]
    assert states(more)["load"] == "cached" and states(more)["pick"] == "succeeded"


def test_an_untagged_notebook_runs_cell_by_cell_with_parameters(write_notebook, local_dir):
    path = write_notebook(
        [
            ("rate = 0.5\nlabel = 'base'", ["parameters"]),
            "import statistics",
            "prices = [10.0, 20.0, 30.0]",
            "discounted = [p * (1 - rate) for p in prices]",
            "print(f'{label}: {statistics.mean(discounted):.2f}')",
        ]
    )
    spec = compile_path(path)
    assert len(spec.steps) == 3  # the import-only cell is a definition, not a step
    run = run_pipeline(spec, {"rate": "0.25", "label": "promo"}, progress=False)
    assert run.ok, run.error
    assert run.log(spec.steps[-1].name) == "promo: 15.00\n"


def test_foreach_with_the_default_item_name_read_by_a_later_branch_step(write_notebook, local_dir):
    path = write_notebook(
        [
            ("words = ['delta', 'alpha', 'charlie']", ["step:words"]),
            ("length = len(item)", ["step:measure", "foreach:words"]),
            ("shout = item.upper() + '!' * length", ["step:shout"]),
            ("print(' '.join(shout))", ["step:collect", "join"]),
        ]
    )
    run = run_pipeline(compile_path(path), workers=2, progress=False)
    assert run.ok, run.error
    assert run.log("collect") == "DELTA!!!!! ALPHA!!!!! CHARLIE!!!!!!!\n"
    assert [t.state for t in run.branch_tasks("shout")] == ["succeeded"] * 3


def test_a_class_from_a_functions_cell_crosses_steps(write_notebook, local_dir):
    path = write_notebook(
        [
            (
                "class Basket:\n"
                "    def __init__(self):\n"
                "        self.items = []\n"
                "    def add(self, name, price):\n"
                "        self.items.append((name, price))\n"
                "    def total(self):\n"
                "        return sum(p for _, p in self.items)",
                ["functions"],
            ),
            ("basket = Basket()\nbasket.add('tea', 3.5)", ["step:fill"]),
            ("basket.add('cake', 4.0)", ["step:more"]),
            ("print(basket.total())", ["step:pay"]),
        ]
    )
    run = run_pipeline(compile_path(path), progress=False)
    assert run.ok, run.error
    assert run.task("fill").outputs["basket"].type == "__main__.Basket"
    assert run.log("pay") == "7.5\n"


FAILING_CELLS = [
    ("md", "A pipeline with a bad element"),
    ("values = [4, 2, 0, 1]\nname = 'ratios'", ["step:prepare"]),
    ("scaled = 100\n\n# the third element divides by zero\nratio = scaled / v", ["step:divide", "foreach:values:v"]),
    ("worst = max(ratio)", ["step:gather", "join"]),
    ("report = worst * 2", ["step:report"]),
    ("title = name.title()", ["step:title"]),
]


def test_a_failing_step_names_its_cell_and_line_and_stops_what_depends_on_it(write_notebook, local_dir):
    # Enough workers for every branch and `title` at once: what was started when the failure came finishes.
    run = run_pipeline(compile_path(write_notebook(FAILING_CELLS)), workers=6, progress=False)
    assert run.state == "failed"
    assert states(run) == {
        "prepare": "succeeded",
        "divide[0]": "succeeded",
        "divide[1]": "succeeded",
        "divide[2]": "failed",
        "divide[3]": "succeeded",
        "gather": "upstream_failed",
        "report": "upstream_failed",
        "title": "succeeded",
    }
    assert (run.error.step, run.error.cell, run.error.line) == ("divide", 2, 4)
    assert run.error.exc_type == "ZeroDivisionError"
    assert "ratio = scaled / v" in run.error.format_traceback()


def test_cache_off_steps_always_run(write_notebook, local_dir):
    path = write_notebook(
        [
            ("n = 3", ["step:start"]),
            ("import random\nsample = [random.random() for _ in range(n)]", ["step:draw", "cache:off"]),
            ("count = len(sample)\nbiggest = max(sample)", ["step:count"]),
            ("print(count, biggest)", ["step:show"]),
        ]
    )
    spec = compile_path(path)
    assert spec.step("draw").cache is False
    first = run_pipeline(spec, progress=False)
    again = run_pipeline(spec, progress=False)
    # `count` is cacheable but its input changed; `show` has no outputs and always runs.
    assert states(again) == {"start": "cached", "draw": "succeeded", "count": "succeeded", "show": "succeeded"}
    assert again.load("draw", "sample") != first.load("draw", "sample")


@pytest.mark.parametrize("cells", [[1, 2], [1, 2, 3]], ids=["two-cells", "three-cells"])
def test_selected_cells_run_alone(write_notebook, local_dir, cells):
    path = write_notebook(
        [
            ("md", "notes"),
            ("a = 2", ["step:one"]),
            ("b = a * 3", ["step:two"]),
            ("c = b + 1", ["step:three"]),
        ]
    )
    spec = compile_path(path, cells=cells)
    run = run_pipeline(spec, progress=False)
    assert run.ok
    assert [t.step for t in run.tasks] == ["one", "two", "three"][: len(cells)]


def test_check_values_from_a_live_namespace_feeds_the_compiler(write_notebook):
    import threading

    from cellar.pipelines.errors import CompileError
    from cellar.pipelines.serializers import check_values

    path = write_notebook(
        [
            ("import threading\n\ndef open_guard():\n    return threading.Lock()", ["functions"]),
            ("guard = open_guard()\nrows = [1, 2, 3]", ["step:connect"]),
            ("with guard:\n    total = sum(rows)", ["step:use"]),
        ]
    )
    compile_notebook(path)  # reading the code alone, nothing says `guard` is a lock
    # What the notebook kernel reports after running the cells.
    kernel = check_values({"guard": threading.Lock(), "rows": [1, 2, 3]}, ["guard", "rows"])
    with pytest.raises(CompileError) as caught:
        compile_notebook(path, kernel_values=kernel)
    problems = [p for p in caught.value.problems if p.code == "unserializable"]
    assert len(problems) == 1 and "'guard'" in problems[0].message and "_thread.lock" in problems[0].message


def test_the_failing_line_is_the_cell_line_after_dropped_magics_and_blank_lines(write_notebook, local_dir):
    # Leading blank lines and a display-only magic are not in the step's code, yet the error
    # must point at the line the user sees in the cell (line 5 here), not at the code's line 2.
    cells = [
        ("x = 0", ["step:prepare"]),
        ("\n\n%matplotlib inline\ny = 1\nz = 1 / x", ["step:divide"]),
    ]
    run = run_pipeline(compile_path(write_notebook(cells)), progress=False)
    assert run.state == "failed"
    assert (run.error.step, run.error.cell, run.error.line) == ("divide", 1, 5)
