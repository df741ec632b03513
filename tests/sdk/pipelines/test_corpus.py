"""The corpus of realistic notebooks compiles to exactly the steps, data and DAG expected."""

from __future__ import annotations

import pytest

from cellar.pipelines.spec import Foreach, Resources
from tests.sdk.pipelines import corpus
from tests.sdk.pipelines.conftest import NOTEBOOKS, compile_corpus, flow


def test_committed_notebooks_are_what_the_corpus_script_writes():
    built = corpus.build()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in NOTEBOOKS.glob("*.ipynb")}
    assert set(on_disk) == set(built), "run `python -m tests.sdk.pipelines.corpus` and commit notebooks/"
    for name, text in built.items():
        assert on_disk[name] == text, f"{name} is stale: rerun the corpus script"


def test_kale_tagged_notebook():
    result = compile_corpus("kale_tagged")
    spec = result.spec
    assert [s.name for s in spec.steps] == ["load_data", "preprocess", "train", "evaluate"]
    assert flow(result) == {
        "load_data": ({}, ["raw"], []),
        "preprocess": ({"raw": "load_data"}, ["test", "train"], ["load_data"]),
        "train": ({"train": "preprocess"}, ["model"], ["preprocess"]),
        "evaluate": ({"model": "train", "test": "preprocess"}, [], ["preprocess", "train"]),
    }
    assert [(p.name, p.default, p.type) for p in spec.parameters] == [
        ("test_size", 0.2, "float"),
        ("C", 1.0, "float"),
        ("features", ["age", "tenure"], "list"),
    ]
    assert {s.name: s.parameters for s in spec.steps} == {
        "load_data": [],
        "preprocess": ["test_size"],
        "train": ["C", "features"],
        "evaluate": ["features"],
    }
    # The skip cell (5) and markdown cells are not part of any step; untagged cell 8 joins preprocess.
    assert {name: (src.cells, src.first_lines) for name, src in spec.source.items()} == {
        "load_data": ([4], [1]),
        "preprocess": ([7, 8], [1, 4]),
        "train": ([9], [1]),
        "evaluate": ([10], [1]),
    }
    preprocess = spec.step("preprocess")
    assert preprocess.code == (
        'clean = raw.dropna()\nclean["ratio"] = clean["tenure"] / (clean["age"] + 1)\n\n'
        "train, test = split(clean, test_size)"
    )
    # imports and functions cells start every step's prelude, imports first.
    assert preprocess.prelude.startswith("import pandas as pd\nimport numpy as np\nfrom sklearn")
    assert "def split(frame, fraction):" in preprocess.prelude
    assert all(s.prelude == preprocess.prelude for s in spec.steps)
    assert preprocess.imports == ["numpy", "pandas", "sklearn"]
    train = spec.step("train")
    assert train.resources == Resources(pool="cpu", cpu=2.0, memory=2 * 1024**3, gpu=0)
    assert (train.retry, train.timeout, train.cache) == (2, 600, True)
    assert train.tags == ["cpu:2", "memory:2Gi", "retry:2", "step:train", "timeout:10m"]
    assert spec.step("evaluate").cache is False
    assert spec.step("preprocess").tags == ["prev:load_data", "step:preprocess"]
    assert result.warnings == []


def test_notebook_without_tags_makes_a_step_per_code_cell():
    result = compile_corpus("no_tags")
    spec = result.spec
    # Cell 1 only imports: it is not a step, its imports go where they are used.
    assert flow(result) == {
        "step_1": ({}, ["region", "sales"], []),
        "step_2": ({"sales": "step_1"}, ["moving"], ["step_1"]),
        "step_3": ({"moving": "step_2"}, ["forecast"], ["step_2"]),
        "step_4": ({"forecast": "step_3", "region": "step_1"}, [], ["step_1", "step_3"]),
    }
    assert [spec.source[s.name].cells for s in spec.steps] == [[2], [3], [5], [6]]
    assert spec.step("step_2").prelude == "import statistics"
    assert spec.step("step_4").prelude == "import json"
    assert spec.step("step_1").prelude == ""
    assert spec.step("step_2").imports == ["statistics"]
    assert spec.step("step_1").tags == []


def test_magics_are_dropped_or_unwrapped_and_lines_still_name_cell_lines():
    result = compile_corpus("magics")
    spec = result.spec
    assert flow(result) == {"compute": ({}, ["roots"], []), "report": ({"roots": "compute"}, [], ["compute"])}
    # %time is unwrapped, the help line is gone; the blank line written in the cell stays.
    assert spec.step("compute").code == (
        "values = [1.0, 4.0, 9.0]\n\nroots = [math.sqrt(v) for v in values]\ntotal = sum(roots)"
    )
    # %%time is unwrapped; %precision inside a block becomes `pass` so the block stays valid.
    assert spec.step("report").code == (
        "doubled = [2 * r for r in roots]\nif doubled:\n    pass\n    biggest = max(doubled)"
    )
    # The definitions cell 0 (display magics dropped) gives `import math` to the step using it.
    assert spec.step("compute").prelude == "import math"
    assert spec.step("report").prelude == ""


def test_functions_carry_their_free_variables_transitively():
    result = compile_corpus("functions_closures")
    spec = result.spec
    assert flow(result) == {
        "setup": ({}, ["pattern", "stopwords"], []),
        "load": ({}, ["bonus", "docs"], []),
        # Scorer.score -> count -> tokens reads pattern and stopwords; Scorer.score reads bonus.
        "score": (
            {"bonus": "load", "docs": "load", "pattern": "setup", "stopwords": "setup"},
            [],
            ["load", "setup"],
        ),
    }
    score = spec.step("score")
    assert score.prelude == (
        "from functools import lru_cache\n\n"
        "def tokens(text):\n    return [w for w in pattern.findall(text.lower()) if w not in stopwords]\n\n"
        "def count(text):\n    return len(tokens(text))\n\n"
        "@lru_cache(maxsize=None)\ndef cached_len(word):\n    return len(word)\n\n"
        "class Scorer:\n    def __init__(self, weight):\n        self.weight = weight\n\n"
        "    def score(self, text):\n        return self.weight * count(text) + bonus"
    )
    assert score.imports == ["functools"]
    # The defs live in cell 2, which belongs to step setup (untagged cells join the step above).
    assert spec.source["setup"].cells == [1, 2]
    assert spec.step("setup").prelude == "import re\nfrom functools import lru_cache"


def test_mutation_makes_the_mutating_step_the_nearest_producer():
    result = compile_corpus("mutation")
    assert flow(result) == {
        "init": ({}, ["config", "counts", "rows"], []),
        "extend": ({"config": "init", "rows": "init"}, ["config", "rows"], ["init"]),
        "make_box": ({}, ["box"], []),
        "label": ({"box": "make_box", "counts": "init"}, ["box", "counts"], ["init", "make_box"]),
        "trim": ({"rows": "extend"}, ["limit", "rows"], ["extend"]),
        "summary": (
            {"box": "label", "config": "extend", "counts": "label", "limit": "trim", "rows": "trim"},
            [],
            ["extend", "label", "trim"],
        ),
    }
    spec = result.spec
    # `collections` is a module: counts.update(...) mutates counts, collections.Counter() does not.
    assert "collections" not in spec.step("init").outputs
    # Box instances reach later steps, so the class travels with them (unpickling needs it).
    assert spec.step("label").prelude == "import collections\n\nclass Box:\n    pass"
    assert spec.step("summary").prelude.endswith("class Box:\n    pass")
    assert spec.step("extend").prelude == "import collections"  # no class defined before it


def test_foreach_with_the_default_item_name_and_join():
    result = compile_corpus("foreach_default_item")
    spec = result.spec
    assert flow(result) == {
        "split": ({}, ["shards"], []),
        "work": ({"shards": "split"}, ["partial", "size"], ["split"]),
        "combine": ({"partial": "work", "size": "work"}, ["sizes", "total"], ["work"]),
        "report": ({"sizes": "combine", "total": "combine"}, [], ["combine"]),
    }
    assert spec.step("work").foreach == Foreach(iterable="shards", item="item")
    assert [(s.name, s.branch_of, s.join) for s in spec.steps] == [
        ("split", None, False),
        ("work", "work", False),
        ("combine", None, True),
        ("report", None, False),
    ]


def test_foreach_with_a_named_item_over_a_parameter_and_a_second_branch_step():
    result = compile_corpus("foreach_named_item")
    spec = result.spec
    assert flow(result) == {
        "baseline": ({}, ["history"], []),
        # The iterable is a parameter: injected, not a data edge.
        "fit": ({}, ["loss", "rate"], []),
        # A later branch step reads the item from the foreach step, per element.
        "score": ({"loss": "fit", "rate": "fit"}, ["scored"], ["fit"]),
        "pick": ({"history": "baseline", "scored": "score"}, [], ["baseline", "score"]),
    }
    fit = spec.step("fit")
    assert fit.foreach == Foreach(iterable="learning_rates", item="rate")
    assert fit.parameters == ["epochs", "learning_rates"]
    assert [s.branch_of for s in spec.steps] == [None, "fit", "fit", None]
    assert spec.step("pick").join is True


def test_parameters_of_every_type():
    result = compile_corpus("parameters")
    spec = result.spec
    assert [(p.name, p.default, p.type) for p in spec.parameters] == [
        ("n_rows", 100, "int"),
        ("ratio", 0.25, "float"),
        ("name", "experiment", "str"),
        ("verbose", False, "bool"),
        ("layers", [64, 32], "list"),
        ("options", {"mode": "fast", "levels": [1, 2]}, "dict"),
        ("seed", None, "none"),
        ("threshold", -0.001, "float"),
    ]
    assert flow(result) == {"make": ({}, ["data"], []), "use": ({"data": "make"}, [], ["make"])}
    assert spec.step("make").parameters == ["n_rows", "name", "verbose"]
    assert spec.step("use").parameters == ["layers", "ratio"]


def test_skip_cells_are_not_even_looked_at():
    # Cell 0 has !shell and %pip, cell 2 a syntax error, cell 4 an import of a missing package.
    result = compile_corpus("skip_cells")
    assert flow(result) == {"load": ({}, ["values"], []), "order": ({"values": "load"}, [], ["load"])}
    assert [result.spec.source[s.name].cells for s in result.spec.steps] == [[1], [3]]
    assert all(s.imports == [] for s in result.spec.steps)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            [2, 3],
            {"step_1": ({}, ["a"], []), "step_2": ({"a": "step_1"}, [], ["step_1"])},
            id="first-two",
        ),
        pytest.param(
            [2, 5],
            {"step_1": ({}, ["a"], []), "step_2": ({"a": "step_1"}, [], ["step_1"])},
            id="with-a-gap",
        ),
        pytest.param([4, 3, 2], None, id="order-does-not-matter"),
    ],
)
def test_selected_cells(cells, expected):
    result = compile_corpus("selected_cells", cells=cells)
    spec = result.spec
    if expected is None:
        expected = {
            "step_1": ({}, ["a"], []),
            "step_2": ({"a": "step_1"}, ["b"], ["step_1"]),
            "step_3": ({"b": "step_2"}, [], ["step_2"]),
        }
    assert flow(result) == expected
    # imports and parameters cells always apply.
    assert spec.step("step_1").parameters == ["base"]
    assert spec.step("step_1").prelude == "import math"
    assert [p.name for p in spec.parameters] == ["base"]
    assert [spec.source[s.name].cells[0] for s in spec.steps] == sorted(cells)


def test_code_before_the_first_step_forms_a_start_step():
    result = compile_corpus("start_step")
    assert flow(result) == {"start": ({}, ["raw"], []), "analyse": ({"raw": "start"}, [], ["start"])}
    start = result.spec.step("start")
    assert start.code == "import random\n\nrandom.seed(0)\nraw = [random.random() for _ in range(5)]"
    assert result.spec.source["start"].cells == [0, 1]
    assert result.spec.source["start"].first_lines == [1, 3]


def test_the_unused_step_warning():
    result = compile_corpus("selected_cells")
    assert [(w.code, w.cell, w.step) for w in result.warnings] == [("unused_step", 4, "step_3")]
