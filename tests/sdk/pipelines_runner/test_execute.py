"""The step executor core, called directly: binding order, outputs, errors mapped to cells."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest

from cellar.pipelines.execute import (
    ArtifactRef,
    StepFailed,
    evaluate_foreach,
    execute_step,
    expand_foreach,
    load_artifact,
    store_value,
)
from cellar.pipelines.spec import Foreach, Step, StepSource

TEAM = "local"

POINT_CLASS = """\
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm2(self):
        return self.x ** 2 + self.y ** 2
"""


def run(step, store, *, parameters=None, inputs=None, item=None, source=None, **kwargs):
    return execute_step(
        step,
        parameters=parameters or {},
        inputs=inputs or {},
        item=item,
        store=store,
        team=TEAM,
        source=source,
        **kwargs,
    )


def test_parameters_prelude_inputs_code_outputs(store):
    data = store_value(np.arange(4), store=store, team=TEAM)
    step = Step(
        name="scale",
        prelude="import numpy as np\nFACTOR = 10",
        code=(
            "scaled = data * FACTOR * alpha\nprint('scaled', len(scaled))\nprint('warn', file=__import__('sys').stderr)"
        ),
        inputs={"data": "load"},
        outputs=["scaled"],
        parameters=["alpha"],
    )
    result = run(step, store, parameters={"alpha": 2, "unused": 1}, inputs={"data": data})
    ref = result.outputs["scaled"]
    assert ref.serializer == "npy" and ref.type == "numpy.ndarray" and ref.size > 0
    np.testing.assert_array_equal(load_artifact(ref, store=store, team=TEAM), [0, 20, 40, 60])
    assert result.stdout == "scaled 4\n"
    assert result.stderr == "warn\n"


def test_only_the_parameters_the_step_reads_are_injected(store):
    step = Step(name="s", code="seen = sorted(k for k in globals() if not k.startswith('__'))", outputs=["seen"])
    result = run(step, store, parameters={"alpha": 1})
    assert load_artifact(result.outputs["seen"], store=store, team=TEAM) == []


def test_a_class_defined_in_one_step_loads_in_the_next(store):
    make = Step(name="make", prelude=POINT_CLASS, code="p = Point(3, 4)", outputs=["p"])
    p = run(make, store).outputs["p"]
    assert p.serializer == "pickle" and p.type == "__main__.Point"
    use = Step(name="use", prelude=POINT_CLASS, code="n = p.norm2()", inputs={"p": "make"}, outputs=["n"])
    n = run(use, store, inputs={"p": p}).outputs["n"]
    assert load_artifact(n, store=store, team=TEAM) == 25


def test_a_class_missing_from_the_later_step_is_explained(store):
    make = Step(name="make", prelude=POINT_CLASS, code="p = Point(3, 4)", outputs=["p"])
    p = run(make, store).outputs["p"]
    use = Step(name="use", code="n = p.norm2()", inputs={"p": "make"}, outputs=["n"])
    with pytest.raises(StepFailed) as caught:
        run(use, store, inputs={"p": p})
    assert caught.value.phase == "inputs"
    assert "input 'p'" in caught.value.message and "'functions' cell" in caught.value.message


def test_main_is_the_step_module_while_it_runs_and_restored_after(store):
    before = sys.modules["__main__"]
    step = Step(name="s", code="import sys\nsame = sys.modules['__main__'].__dict__ is globals()", outputs=["same"])
    assert load_artifact(run(step, store).outputs["same"], store=store, team=TEAM) is True
    assert sys.modules["__main__"] is before
    with pytest.raises(StepFailed):
        run(Step(name="boom", code="raise RuntimeError('x')"), store)
    assert sys.modules["__main__"] is before


def test_a_step_that_changes_directory_does_not_move_the_next(store, tmp_path):
    before = os.getcwd()
    run(Step(name="move", code=f"import os\nos.chdir({str(tmp_path)!r})"), store)
    assert os.getcwd() == before


def test_a_missing_output_names_it(store):
    step = Step(name="fit", code="if False:\n    model = 1\nscore = 0.5", outputs=["model", "score"])
    with pytest.raises(StepFailed) as caught:
        run(step, store)
    failed = caught.value
    assert failed.exc_type == "NameError" and failed.phase == "outputs"
    assert "'model'" in failed.message and "'score'" not in failed.message


def test_an_unserializable_output_names_it_and_the_type(store):
    step = Step(name="open", code="import threading\nlock = threading.Lock()", outputs=["lock"])
    with pytest.raises(StepFailed) as caught:
        run(step, store)
    assert caught.value.phase == "outputs"
    assert "output 'lock'" in caught.value.message and "_thread.lock" in caught.value.message


def test_an_output_the_store_cannot_take_names_the_output_and_the_store(store):
    # A file where the team's data folder should be: no process, root included, can write under it.
    blocked = store.root / "teams" / TEAM / "data"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    # Larger than INLINE_MAX_BYTES: small JSON values travel in their reference, not the store.
    step = Step(name="fit", code="model = list(range(1000))", outputs=["model"])
    with pytest.raises(StepFailed) as caught:
        run(step, store)
    failed = caught.value
    assert failed.exc_type == "ArtifactStoreError" and failed.phase == "outputs"
    assert failed.message.startswith("output 'model': could not write to the artifact store: NotADirectoryError")


def test_errors_name_the_cell_and_line_and_keep_only_user_frames(store):
    # Two cells: cell 3 is code lines 1-3, cell 5 starts at line 5 (a blank line joins them).
    code = "a = 1\nb = 2\nc = a + b\n\nd = c * 2\nimport json\njson.loads('{nope')\n"
    step = Step(name="parse", code=code)
    source = StepSource(cells=[3, 5], first_lines=[1, 5])
    with pytest.raises(StepFailed) as caught:
        run(step, store, source=source)
    failed = caught.value
    assert (failed.step, failed.cell, failed.line) == ("parse", 5, 3)
    assert failed.exc_type == "JSONDecodeError"
    assert [(f.cell, f.cell_line) for f in failed.frames] == [(5, 3)]  # json's own frames are not user code
    assert failed.frames[0].text == "json.loads('{nope')"
    text = failed.format_traceback()
    assert "cell 5, line 3, in <module>" in text and "json.loads('{nope')" in text
    assert str(failed).startswith("step 'parse', cell 5, line 3: JSONDecodeError")


def test_a_failure_inside_a_prelude_function_maps_both_frames(store):
    prelude = "def ratio(a, b):\n    return a / b\n"
    step = Step(name="div", prelude=prelude, code="x = 1\ny = ratio(x, 0)\n")
    with pytest.raises(StepFailed) as caught:
        run(step, store, source=StepSource(cells=[7], first_lines=[1]))
    failed = caught.value
    assert failed.exc_type == "ZeroDivisionError"
    assert [(f.function, f.cell, f.cell_line) for f in failed.frames] == [("<module>", 7, 2), ("ratio", "prelude", 2)]
    assert (failed.cell, failed.line) == ("prelude", 2)


def test_a_syntax_error_names_the_cell_and_line(store):
    step = Step(name="bad", code="x = 1\n\ny = (\n")
    with pytest.raises(StepFailed) as caught:
        run(step, store, source=StepSource(cells=[2, 4], first_lines=[1, 3]))
    assert caught.value.exc_type == "SyntaxError"
    assert (caught.value.cell, caught.value.line) == (4, 1)


def test_exit_in_a_step_is_a_failure(store):
    with pytest.raises(StepFailed, match=r"called exit\(3\)"):
        run(Step(name="quit", code="import sys\nsys.exit(3)"), store)


def test_prints_before_a_failure_are_kept_and_forwarded(store):
    seen = []
    step = Step(name="chatty", code="print('one')\nprint('two')\nraise ValueError('three')")
    with pytest.raises(StepFailed) as caught:
        run(step, store, on_output=lambda stream, text: seen.append((stream, text)))
    assert caught.value.stdout == "one\ntwo\n"
    assert ("stdout", "one") in seen


def test_step_failed_survives_pickling():
    failed = StepFailed("train", "ValueError", "bad C", cell=4, line=2, stdout="x")
    back = pickle.loads(pickle.dumps(failed))
    assert (back.step, back.exc_type, back.message, back.cell, back.line, back.stdout) == (
        "train",
        "ValueError",
        "bad C",
        4,
        2,
        "x",
    )


def test_foreach_item_is_bound_to_its_name(store):
    step = Step(name="train", code="score = C * 10", foreach=Foreach("grid", "C"), outputs=["score"], branch_of="train")
    item = store_value(0.5, store=store, team=TEAM)
    assert load_artifact(run(step, store, item=item).outputs["score"], store=store, team=TEAM) == 5.0


def test_a_join_gets_lists(store):
    refs = [store_value(v, store=store, team=TEAM) for v in (3, 1, 2)]
    code = "best = max(score)\norder = score"
    step = Step(name="join", code=code, inputs={"score": "train"}, outputs=["best", "order"])
    outputs = run(step, store, inputs={"score": refs}).outputs
    assert load_artifact(outputs["order"], store=store, team=TEAM) == [3, 1, 2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [([1, 2], [1, 2]), (range(3), [0, 1, 2]), ({"a": 1, "b": 2}, ["a", "b"]), ((x for x in "ab"), ["a", "b"])],
    ids=["list", "range", "dict-keys", "generator"],
)
def test_expand_foreach(value, expected):
    assert expand_foreach(value) == expected


def test_expand_foreach_refuses_strings_and_non_iterables():
    with pytest.raises(TypeError, match="characters"):
        expand_foreach("abc")
    with pytest.raises(TypeError, match="something to iterate over.*int"):
        expand_foreach(5)


def test_evaluate_foreach_from_a_parameter_an_input_and_a_constant(store):
    by_parameter = Step(name="f", code="", foreach=Foreach("grid"), parameters=["grid"])
    refs = evaluate_foreach(by_parameter, parameters={"grid": [0.1, 1.0]}, inputs={}, store=store, team=TEAM)
    assert [load_artifact(r, store=store, team=TEAM) for r in refs] == [0.1, 1.0]

    seeds = store_value(np.array([7, 8, 9]), store=store, team=TEAM)
    by_input = Step(name="f", code="", foreach=Foreach("seeds"), inputs={"seeds": "prepare"})
    refs = evaluate_foreach(by_input, parameters={}, inputs={"seeds": seeds}, store=store, team=TEAM)
    assert [int(load_artifact(r, store=store, team=TEAM)) for r in refs] == [7, 8, 9]

    by_constant = Step(name="f", code="", prelude="SIZES = {'s': 1, 'm': 2}", foreach=Foreach("SIZES"))
    refs = evaluate_foreach(by_constant, parameters={}, inputs={}, store=store, team=TEAM)
    assert [load_artifact(r, store=store, team=TEAM) for r in refs] == ["s", "m"]
    assert all(isinstance(r, ArtifactRef) for r in refs)


def test_evaluate_foreach_over_a_string_fails_at_the_step_cell(store):
    step = Step(name="f", code="", foreach=Foreach("name"), parameters=["name"])
    with pytest.raises(StepFailed) as caught:
        evaluate_foreach(
            step, parameters={"name": "abc"}, inputs={}, store=store, team=TEAM, source=StepSource([6], [1])
        )
    assert caught.value.phase == "foreach" and caught.value.cell == 6
    assert "characters" in caught.value.message


@pytest.mark.parametrize(
    ("value", "inline"),
    [
        pytest.param(42, True, id="int"),
        pytest.param({"lr": 0.1, "name": "a"}, True, id="small-dict"),
        pytest.param(list(range(200)), False, id="json-over-the-limit"),
        pytest.param((1, 2), False, id="tuple-is-pickle"),
    ],
)
def test_small_json_values_travel_inline_and_the_rest_go_to_the_store(store, value, inline):
    ref = store_value(value, store=store, team=TEAM)
    assert (ref.inline is not None) is inline
    blobs = list((store.root / "teams" / TEAM).rglob("*")) if (store.root / "teams").exists() else []
    assert bool([b for b in blobs if b.is_file()]) is not inline
    assert load_artifact(ArtifactRef.from_dict(ref.to_dict()), store=store, team=TEAM) == value
    # The digest is the bytes' own wherever they live: the same value stored as a blob hashes the same.
    assert ref.sha256 == store_value(value, store=store, team=TEAM, inline=False).sha256
    assert ("inline" in ref.to_dict()) is inline


def test_a_join_reads_inline_branch_values(store):
    step = Step(name="total", code="total = sum(x)", inputs=["x"], outputs=["total"], join=True)
    refs = [store_value(i, store=store, team=TEAM) for i in range(5)]
    result = run(step, store, inputs={"x": refs})
    assert load_artifact(result.outputs["total"], store=store, team=TEAM) == 10
    assert not (store.root / "teams").exists()  # five inputs and the output: no file written
