"""Magics and shell lines: dropped, unwrapped or refused, with lines mapped back to the cell."""

from __future__ import annotations

import pytest

from cellar.pipelines.magics import clean_cell
from tests.sdk.pipelines.conftest import cell_problems, compile_cells


def test_plain_python_is_only_normalised():
    cleaned = clean_cell("\r\n\n    x = 1   \r\n    y = '%matplotlib'\n\n\n", cell=0)
    assert cleaned.code == "x = 1\ny = '%matplotlib'"
    assert cleaned.lines == [3, 4]
    assert cleaned.problems == []


@pytest.mark.parametrize(
    "line",
    [
        "%matplotlib inline",
        "%config InlineBackend.figure_format = 'svg'",
        "%load_ext autoreload",
        "%reload_ext autoreload",
        "%autoreload 2",
        "%precision 3",
        "%pprint",
        "%xmode Verbose",
        "%colors nocolor",
        "%pdb on",
        "%doctest_mode",
        "%automagic off",
        "%who",
        "df?",
        "df.head??",
        "?print",
        "%pinfo df",
    ],
)
def test_display_only_lines_are_dropped(line):
    cleaned = clean_cell(f"a = 1\n{line}\nb = 2", cell=3)
    assert cleaned.problems == []
    assert cleaned.code == "a = 1\nb = 2"
    assert cleaned.lines == [1, 3]  # code line 2 is cell line 3
    assert cleaned.cell_line(2) == 3


def test_time_is_unwrapped_and_timeit_refused():
    cleaned = clean_cell("%time model = fit(x)\nscore = 1", cell=0)
    assert cleaned.code == "model = fit(x)\nscore = 1" and cleaned.problems == []
    cleaned = clean_cell("%%time\nmodel = fit(x)", cell=0)
    assert cleaned.code == "model = fit(x)" and cleaned.lines == [2]
    (problem,) = clean_cell("%timeit fit(x)\ny = 1", cell=2).problems
    assert (problem.code, problem.cell, problem.line) == ("magic", 2, 1)
    (problem,) = clean_cell("%%timeit\nfit(x)", cell=2).problems
    assert (problem.code, problem.line) == ("magic", 1)


def test_a_dropped_magic_inside_a_block_becomes_pass():
    cleaned = clean_cell("for i in range(3):\n    %matplotlib inline\nz = 1", cell=0)
    assert cleaned.code == "for i in range(3):\n    pass\nz = 1"
    assert cleaned.lines == [1, 2, 3]


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("%pip install torch", 1),
        ("import x\n%conda install -y scipy", 2),
        ("!pip install -U pandas", 1),
        ("!pip3 install pandas", 1),
        ("!conda install numpy", 1),
        ("!{sys.executable} -m pip install shap", 1),
        ("!python -m pip install shap", 1),
        ("%mamba install polars", 1),
        ("out = !pip freeze", 1),
        ("\n%%bash\npip install shap", 2),
        ("%%sh\nconda install -y x", 1),
        ("%%script bash\npip install x", 1),
    ],
)
def test_package_installs_are_pip_magic_errors(source, line):
    (problem,) = clean_cell(source, cell=5).problems
    assert (problem.code, problem.cell, problem.line) == ("pip_magic", 5, line)
    assert "environment" in problem.message and "lock" in problem.message


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("%cd /tmp", 1),
        ("%env MY=1", 1),
        ("%load_ext sql", 1),
        ("%run other.py", 1),
        ("!ls", 1),
        ("x = 1\n  !echo hi", 2),
        ("files = !ls", 1),
        ("value = %env HOME", 1),
        ("%store x", 1),
        ("%%capture out\nprint(1)", 1),
        ("%%writefile f.py\nx = 1", 1),
        ("%%html\n<b>hi</b>", 1),
        ("%%bash\necho hi", 1),
    ],
)
def test_other_magics_are_errors_naming_the_line(source, line):
    (problem,) = clean_cell(source, cell=1).problems
    assert (problem.code, problem.cell, problem.line) == ("magic", 1, line)


def test_a_continued_magic_line_is_handled_whole():
    cleaned = clean_cell("%config A.b = \\\n    1\nx = 2", cell=0)
    assert cleaned.problems == []
    assert cleaned.code == "x = 2" and cleaned.lines == [3]


def test_errors_in_a_compiled_notebook_name_cell_lines_after_dropped_lines():
    # Two dropped lines and leading blanks before the error: the line is the cell's.
    assert cell_problems(("\n\n%matplotlib inline\nx?\n\nx = undefined_name", ["step:a"])) == [
        ("undefined_name", 0, "a", 6)
    ]
    assert cell_problems(("%matplotlib inline\n\nfor i in range(3)\n    pass", ["step:a"])) == [
        ("syntax_error", 0, "a", 3)
    ]


def test_the_cells_code_keeps_no_magic():
    result = compile_cells(("%matplotlib inline\nimport math\n%time r = math.sqrt(4)\nr?", ["step:a"]))
    step = result.spec.step("a")
    assert step.code == "import math\nr = math.sqrt(4)"
    assert step.imports == ["math"]
