"""Name analysis through the compiler: scopes, mutation, definitions, precedence."""

from __future__ import annotations

from cellar.pipelines.analysis import analyze_cell
from tests.sdk.pipelines.conftest import cell_problems, compile_cells


def ins_of(code: str) -> list[str]:
    """Names the code reads before binding (what it needs from outside), in order."""
    bound: set[str] = set()
    needed: list[str] = []
    for event in analyze_cell(code, 0).events:
        if event.op in ("read", "mutate", "delete") and event.name not in bound and event.name not in needed:
            needed.append(event.name)
        if event.op in ("bind", "define"):
            bound.add(event.name)
    return needed


def test_scopes_do_not_leak():
    code = """
squares = [i * i for i in range(n)]
pairs = {k: v for k, v in mapping.items() if v > k}
nested = [[x * 2 for x in row] for row in grid]
gen = sum(j for j in values)
f = lambda a, *rest, b=default, **kw: a + b + outer
"""
    assert ins_of(code) == ["range", "n", "mapping", "grid", "sum", "values", "default", "outer"]


def test_bindings_of_every_kind():
    code = """
a, (b, *c) = load()
for i, j in pairs:
    total = i + j
with ctx() as (h1, h2), other() as h3:
    pass
try:
    risky()
except ValueError as err:
    print(err)
if (m := compute()) > 0:
    print(m)
match command:
    case {"go": where, **others}:
        print(where, others)
    case [first, *tail]:
        print(first, tail)
    case Point(x=px) as point:
        print(px, point)
kind: str = "x"
print(a, b, c, total, h1, h2, h3, m, kind)
"""
    assert ins_of(code) == [
        "load",
        "pairs",
        "ctx",
        "other",
        "risky",
        "ValueError",
        "print",
        "compute",
        "command",
        "Point",
        "str",
    ]


def test_functions_free_variables_globals_and_mutations():
    cell = analyze_cell(
        """
def step(a, b=scale):
    global counter
    counter += 1
    cache[a] = b
    local = helper(a)
    return [local + z for z in seen if z > limit]
""",
        cell=0,
    )
    (definition,) = cell.definitions
    assert set(definition.free) == {"scale", "counter", "cache", "helper", "seen", "limit"}
    assert definition.global_writes == {"counter"}
    assert definition.mutates == {"cache"}
    assert definition.immediate == {"scale": 2}


def test_class_body_runs_now_methods_when_used():
    cell = analyze_cell(
        """
class Model(Base):
    size = default_size
    doubled = size * 2

    def predict(self, x):
        return x * weight + size
""",
        cell=0,
    )
    reads = [e.name for e in cell.events if e.op == "read"]
    assert reads == ["Base", "default_size"]  # the class body; not the method's names
    (definition,) = cell.definitions
    # A method does not see class-body names: `size` there is the module's.
    assert set(definition.free) == {"Base", "default_size", "weight", "size"}


def test_mutation_of_data_but_not_of_modules_or_functions():
    result = compile_cells(
        "import numpy as np\nimport random",
        ("rows = []\nstate = {}\ndef helper():\n    return 1", ["step:make"]),
        ("np.random.seed(0)\nrandom.shuffle(rows)\nhelper.cache = None\nstate.update(a=1)", ["step:change"]),
        ("print(rows, state)", ["step:use"]),
    )
    spec = result.spec
    # random.shuffle(rows) is a call on a module: it reads rows but does not make change a producer.
    assert spec.step("change").outputs == ["state"]
    assert spec.step("use").inputs == {"rows": "make", "state": "change"}
    assert "helper" not in spec.step("change").inputs


def test_a_function_called_where_it_is_defined_reads_its_free_variables_then():
    result = compile_cells(
        ("threshold = 3", ["step:a"]),
        ("def over(x):\n    return x > threshold\n\nflags = [over(v) for v in range(5)]", ["step:b"]),
    )
    assert result.spec.step("b").inputs == {"threshold": "a"}


def test_a_function_defined_but_not_called_needs_nothing_yet():
    result = compile_cells(
        ("def later(x):\n    return x * factor", ["step:a"]),
        ("factor = 2\nresult = later(3)", ["step:b"]),
    )
    spec = result.spec
    assert spec.step("a").inputs == {}
    assert spec.step("b").inputs == {}  # factor is bound before later() runs
    assert spec.step("b").prelude == "def later(x):\n    return x * factor"


def test_the_nearest_binding_wins_between_data_and_definitions():
    result = compile_cells(
        ("def model():\n    return 1", ["step:a"]),
        ("model = 5", ["step:b"]),
        ("print(model)", ["step:c"]),
    )
    assert result.spec.step("c").inputs == {"model": "b"}
    assert result.spec.step("c").prelude == ""


def test_a_step_reassigning_a_parameter_wins_over_it_and_is_warned_about():
    result = compile_cells(("lr = 0.1", ["parameters"]), ("lr = lr * 2", ["step:a"]), ("print(lr)", ["step:b"]))
    spec = result.spec
    assert spec.step("a").parameters == ["lr"]
    assert spec.step("b").inputs == {"lr": "a"}
    assert spec.step("b").parameters == []
    assert [(w.code, w.cell, w.step, w.line) for w in result.warnings] == [("shadows_parameter", 1, "a", 1)]


def test_try_import_block_travels_whole_and_a_nested_import_does_not():
    result = compile_cells(
        ("try:\n    import ujson as json\nexcept ImportError:\n    import json", ["step:a"]),
        ("text = json.dumps({})", ["step:b"]),
    )
    assert result.spec.step("b").prelude == "try:\n    import ujson as json\nexcept ImportError:\n    import json"
    assert result.spec.step("b").imports == ["json", "ujson"]
    assert cell_problems(
        ("if True:\n    import json\n    x = len([])", ["step:a"]),
        ("text = json.dumps({})", ["step:b"]),
    ) == [("undefined_name", 1, "b", None)]


def test_imports_and_functions_cells_are_in_every_prelude_and_their_functions_free_variables_followed():
    result = compile_cells(
        ("import math", ["imports"]),
        ("def area(r):\n    return math.pi * r * r * unit", ["functions"]),
        ("unit = 2", ["step:setup"]),
        ("a = area(3)", ["step:use"]),
    )
    spec = result.spec
    prelude = "import math\n\ndef area(r):\n    return math.pi * r * r * unit"
    assert [s.prelude for s in spec.steps] == [prelude, prelude]
    assert spec.step("use").inputs == {"unit": "setup"}
    assert spec.step("setup").inputs == {}


def test_builtins_and_module_names_are_not_inputs():
    result = compile_cells(("x = len([1]) + abs(-1)\nprint(__name__)", ["step:a"]))
    assert result.spec.step("a").inputs == {} and result.spec.step("a").parameters == []


def test_a_later_definition_is_not_visible():
    assert cell_problems(("y = f(1)", ["step:a"]), ("def f(x):\n    return x", ["step:b"])) == [
        ("undefined_name", 0, "a", 1)
    ]


def test_foreach_iterable_must_come_from_before():
    assert cell_problems(("items = [1, 2]\nr = item", ["step:a", "foreach:items"])) == [("bad_tag", 0, "a", None)]
    assert cell_problems(("r = item", ["step:a", "foreach:nothing"])) == [("undefined_name", 0, "a", None)]


def test_a_foreach_without_join_runs_to_the_end():
    result = compile_cells(("xs = [1, 2]", ["step:a"]), ("y = item", ["step:b", "foreach:xs"]), ("z = y", ["step:c"]))
    assert [s.branch_of for s in result.spec.steps] == [None, "b", "b"]


def test_prev_to_a_later_step_is_an_edge_not_a_cycle():
    result = compile_cells(("a = 1", ["step:first", "prev:second"]), ("b = 2", ["step:second"]))
    assert result.spec.step("first").upstream == ["second"]
    assert result.spec.edges() == [("second", "first")]


def test_star_imports_may_provide_any_name():
    result = compile_cells(
        ("from math import *", ["step:a"]),
        ("x = sqrt(2) + pi", ["step:b"]),
        ("from statistics import *\ny = mean([x, 1])", ["step:c"]),
    )
    spec = result.spec
    assert spec.step("b").prelude == "from math import *"
    assert spec.step("b").imports == ["math"]
    assert spec.step("c").inputs == {"x": "b"}
    assert cell_problems(("x = sqrt(2)", ["step:a"])) == [("undefined_name", 0, "a", 1)]


def test_selecting_part_of_a_step_keeps_the_step_and_names_what_is_missing():
    import pytest

    from cellar.pipelines.errors import CompileError
    from tests.sdk.pipelines.conftest import compile_corpus, problems_of

    # Cell 8 belongs to step preprocess (started in cell 7, not selected): the step keeps its name.
    result = compile_corpus("kale_tagged", cells=[4, 7, 8])
    assert [s.name for s in result.spec.steps] == ["load_data", "preprocess"]
    assert problems_of("kale_tagged", cells=[4, 8]) == [("undefined_name", 8, "preprocess", 1)]
    with pytest.raises(CompileError) as caught:
        compile_corpus("kale_tagged", cells=[4, 8])
    assert "assigned in cell 7, which is not among the selected cells" in str(caught.value)


def test_very_long_expressions_are_analysed_or_refused_not_crashed_on():
    long_sum = "x = " + " + ".join(f"a{i}" for i in range(1500))
    assert [c for c, *_ in cell_problems(("a0 = 1", ["step:a"]), (long_sum, ["step:b"]))] == ["undefined_name"] * 1499
    too_deep = "x = " + " + ".join("1" for _ in range(20000))
    assert cell_problems((too_deep, ["step:a"])) == [("syntax_error", 0, "a", None)]
