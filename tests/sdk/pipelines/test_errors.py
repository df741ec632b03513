"""Every compile error: the exact code, cell, step and line; all problems reported at once."""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cellar.pipelines.compiler import compile_notebook
from cellar.pipelines.errors import CompileError
from cellar.pipelines.spec import PoolOffer
from tests.sdk.pipelines.conftest import ENV, compile_corpus, corpus_path, problems_of


def messages_of(name: str, **options) -> list[str]:
    options.setdefault("environment", ENV)
    with pytest.raises(CompileError) as caught:
        compile_notebook(corpus_path(name), **options)
    return [str(p) for p in caught.value.problems]


def test_cycle_through_a_prev_to_a_later_step():
    assert problems_of("err_cycle") == [("cycle", 0, "first", None)]
    (message,) = messages_of("err_cycle")
    assert "first -> second -> third -> first" in message
    assert message.startswith("cell 0, step 'first': ")


def test_undefined_names():
    assert problems_of("err_undefined") == [
        ("undefined_name", 2, "join_tables", 2),
        ("undefined_name", 3, "show", 1),
    ]
    lookup, display = messages_of("err_undefined")
    assert "'lookup'" in lookup and "only later (cell 2, line 3)" in lookup
    assert "from IPython.display import display" in display


def test_prev_to_a_missing_step():
    assert problems_of("err_unknown_prev") == [("unknown_prev", 1, "train", None)]
    (message,) = messages_of("err_unknown_prev")
    assert "prev:lod" in message and "load, train" in message


def test_syntax_error_names_the_cell_line_and_does_not_hide_other_steps():
    assert problems_of("err_syntax") == [("syntax_error", 1, "broken", 2)]
    (message,) = messages_of("err_syntax")
    assert "for v in range(3)" in message


POOLS = {
    "cpu": PoolOffer(name="cpu", cpu=8, memory=32 * 1024**3),
    "gpu": PoolOffer(name="gpu", cpu=16, memory=64 * 1024**3, gpu=2),
}


def test_resources_no_pool_offers():
    assert problems_of("err_resources", pools=POOLS) == [
        ("unknown_pool", 0, "prep", None),
        ("resource_unavailable", 1, "train", None),
        ("resource_unavailable", 2, "post", None),
    ]
    pool, gpu, cpu = messages_of("err_resources", pools=POOLS)
    assert "'highmem'" in pool and "cpu, gpu" in pool
    assert (
        "512Gi" not in gpu and "524,288 MiB of memory (it offers 65,536 MiB)" in gpu and "4 GPU(s) (it offers 2)" in gpu
    )
    assert "64 CPU cores (it offers 8)" in cpu


def test_resources_are_not_checked_without_pools():
    result = compile_corpus("err_resources")
    assert result.spec.step("train").resources.pool == "gpu"
    assert result.spec.step("prep").resources.pool == "highmem"


def test_resources_that_fit_pass():
    pools = {**POOLS, "highmem": PoolOffer(name="highmem", cpu=64, memory=1024**4, gpu=0)}
    pools["gpu"] = PoolOffer(name="gpu", cpu=64, memory=1024**4, gpu=4)
    pools["cpu"] = PoolOffer(name="cpu", cpu=64, memory=None)
    assert compile_corpus("err_resources", pools=pools).spec.step("post").resources.cpu == 64


def test_unserializable_outputs_found_statically():
    assert problems_of("err_unserializable_static") == [
        ("unserializable", 0, "resources", line) for line in (5, 6, 7, 8, 9, 10)
    ]
    messages = messages_of("err_unserializable_static")
    for text in ("an open file", "a connection (sqlite3.connect", "a socket", "a thread or lock", "a generator"):
        assert any(text in m for m in messages), text
    assert all("recreate it in the step that uses it, or in a `functions` cell" in m for m in messages)


def test_unserializable_outputs_reported_by_the_kernel():
    kernel = {
        "context": {"ok": False, "type": "ssl.SSLContext", "size": None, "error": "cannot pickle 'SSLContext' object"},
        "rows": {"ok": True, "type": "list", "size": 20, "error": None},
    }
    assert problems_of("err_unserializable_kernel", kernel_values=kernel) == [("unserializable", 0, "connect", 2)]
    (message,) = messages_of("err_unserializable_kernel", kernel_values=kernel)
    assert "ssl.SSLContext" in message and "cannot pickle 'SSLContext' object" in message
    assert "recreate it in the step that uses it" in message


def test_the_kernel_overrides_the_static_guess():
    # What the kernel reports wins over the static guess (here: `log` pickles after all);
    # outputs it did not report are still checked statically.
    kernel = {"log": {"ok": True, "type": "TextIOWrapper", "size": 10, "error": None}}
    codes = problems_of("err_unserializable_static", kernel_values=kernel)
    assert ("unserializable", 0, "resources", 5) not in codes
    assert len(codes) == 5


def test_pip_magics_point_to_the_environment():
    assert problems_of("err_pip_magic") == [
        ("pip_magic", 0, "setup", 1),
        ("pip_magic", 1, "more", 1),
        ("pip_magic", 1, "more", 2),
        ("pip_magic", 1, "more", 3),
        ("pip_magic", 2, "bash", 1),
    ]
    assert all("environment" in m and "lock" in m for m in messages_of("err_pip_magic"))


def test_other_magics_and_shell_lines_are_errors():
    assert problems_of("err_magic") == [
        ("magic", 0, "fetch", 1),
        ("magic", 0, "fetch", 2),
        ("magic", 0, "fetch", 3),
        ("magic", 1, "time", 1),
        ("magic", 1, "time", 2),
        ("magic", 2, "write", 1),
        ("magic", 3, "shell", 1),
    ]
    messages = messages_of("err_magic")
    assert "%cd" in messages[0] and "!wget" in messages[2] and "%timeit" in messages[3] and "%%writefile" in messages[5]


def test_bad_tags():
    assert problems_of("err_bad_tag") == [
        ("bad_tag", 0, "start", None),
        *[("bad_tag", 1, "ok", None)] * 5,
        *[("bad_tag", 2, "ok", None)] * 3,
        ("bad_tag", 3, "a", None),
    ]
    messages = messages_of("err_bad_tag")
    for tag in ("step:Load", "gpu:two", "memory:lots", "timeout:soon", "cache:maybe", "foreach:1bad", "colour:blue"):
        assert any(f"tag '{tag}'" in m for m in messages), tag
    assert any("Kale's `limit:` tag" in m for m in messages)
    assert any("'retry:1' belongs on the cell that starts a step" in m for m in messages)
    assert any("already starts step 'a'" in m for m in messages)


def test_bad_parameters():
    assert problems_of("err_bad_parameters") == [
        ("bad_parameters", 0, None, 1),
        ("bad_parameters", 0, None, 3),
        ("bad_parameters", 0, None, 4),
        ("bad_parameters", 0, None, 5),
    ]
    messages = messages_of("err_bad_parameters")
    assert "'path' must be a literal" in messages[1]
    assert "a set is not JSON data" in messages[2]


def test_nested_foreach():
    assert problems_of("err_nested_foreach") == [("nested_foreach", 2, "second", None)]
    (message,) = messages_of("err_nested_foreach")
    assert "step 'first' (cell 1)" in message


def test_join_without_foreach():
    assert problems_of("err_join_without_foreach") == [("join_without_foreach", 1, "collect", None)]


def test_a_branch_output_read_after_the_join():
    assert problems_of("err_branch_output") == [("branch_output", 3, "after", 1)]
    (message,) = messages_of("err_branch_output")
    assert "`join` step" in message and "'square'" in message


def test_duplicate_step_names():
    assert problems_of("err_duplicate_step") == [("duplicate_step", 1, "load", None)]


def test_empty_pipeline():
    assert problems_of("err_empty") == [("empty_pipeline", None, None, None)]
    assert problems_of("kale_tagged", cells=[0]) == [("empty_pipeline", None, None, None)]


def test_bad_notebooks():
    for source, needle in [
        ("{not json", "not valid JSON"),
        ('{"cells": []}', "no 'nbformat' version"),
        ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}', "nbformat 4"),
        ("/no/such/notebook.ipynb", "cannot read the notebook"),
    ]:
        with pytest.raises(CompileError) as caught:
            compile_notebook(source, environment=ENV)
        (problem,) = caught.value.problems
        assert problem.code == "bad_notebook" and needle in problem.message, (source, problem.message)


def test_selecting_cells_that_do_not_exist():
    assert problems_of("selected_cells", cells=[2, 40]) == [("bad_notebook", None, None, None)]


def test_every_problem_is_reported_in_one_error():
    notebook = new_notebook(
        cells=[
            new_code_cell("x = 1\n!ls", metadata={"tags": ["step:load", "gpu:lots"]}),
            new_code_cell("y = (", metadata={"tags": ["step:broken"]}),
            new_code_cell("z = x + w + y", metadata={"tags": ["step:use", "prev:nowhere"]}),
        ]
    )
    with pytest.raises(CompileError) as caught:
        compile_notebook(notebook, environment=ENV)
    # `y` may be defined by cell 1, which does not parse: not reported. `w` appears nowhere: reported.
    assert [(p.code, p.cell, p.line) for p in caught.value.problems] == [
        ("bad_tag", 0, None),
        ("magic", 0, 2),
        ("syntax_error", 1, 1),
        ("unknown_prev", 2, None),
        ("undefined_name", 2, 1),
    ]
    assert "name 'w'" in str(caught.value.problems[4])
