"""The tag grammar: sizes, durations, every tag's parsing, where tags may appear."""

from __future__ import annotations

import pytest

from cellar.pipelines.spec import Foreach
from cellar.pipelines.tags import parse_duration, parse_size, parse_tags
from tests.sdk.pipelines.conftest import cell_problems, compile_cells


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512Mi", 512 * 1024**2),
        ("4Gi", 4 * 1024**3),
        ("2G", 2 * 10**9),
        ("1.5GB", 1_500_000_000),
        ("1048576", 1048576),
        ("100k", 100_000),
        ("2gib", 2 * 1024**3),
        ("1Ti", 1024**4),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1Gi", "0", "4 Gigs", "1e9", "Gi"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5", "10 minutes", "m"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_every_tag_parses():
    tags, problems = parse_tags(
        [
            "block:train",
            "prev:load",
            "prev:clean",
            "foreach:configs:cfg",
            "pool:gpu-a100",
            "gpu:2",
            "cpu:0.5",
            "memory:16Gi",
            "retry:3",
            "timeout:2h",
            "cache:off",
        ],
        cell=4,
    )
    assert problems == []
    assert tags.step == "train"
    assert tags.prev == ["load", "clean"]
    assert tags.foreach == Foreach(iterable="configs", item="cfg")
    assert (tags.pool, tags.gpu, tags.cpu, tags.memory) == ("gpu-a100", 2, 0.5, 16 * 1024**3)
    assert (tags.retry, tags.timeout, tags.cache) == (3, 7200, False)
    assert tags.written == sorted(tags.written)


@pytest.mark.parametrize(
    ("tag", "role"),
    [
        ("imports", "imports"),
        ("functions", "functions"),
        ("parameters", "parameters"),
        ("pipeline-parameters", "parameters"),
        ("skip", "skip"),
        ("injected-parameters", "injected-parameters"),
    ],
)
def test_role_tags(tag, role):
    tags, problems = parse_tags([tag], cell=0)
    assert problems == [] and tags.role == role


@pytest.mark.parametrize(
    "bad",
    [
        ["step:"],
        ["step:Train"],
        ["step:a b"],
        ["prev:"],
        ["foreach:"],
        ["foreach:a:b:c"],
        ["foreach:class"],
        ["gpu:-1"],
        ["gpu:1.5"],
        ["cpu:0"],
        ["cpu:many"],
        ["retry:x"],
        ["pool:"],
        ["cache:enabled"],
        ["gpu:1", "gpu:2"],
        ["step:a", "step:b"],
        ["skip", "imports"],
        ["parameters", "step:a"],
        ["functions", "gpu:1"],
        ["pipeline-metrics"],
        ["annotation:x:y"],
        ["hide-input"],
    ],
)
def test_bad_tags(bad):
    _, problems = parse_tags(bad, cell=7)
    assert problems and all(p.code == "bad_tag" and p.cell == 7 for p in problems)


def test_step_tags_as_written_sorted_into_the_step():
    result = compile_cells(("w = 0", ["step:first"]), ("x = 1", ["timeout:90s", "step:load", "gpu:1", "prev:first"]))
    step = result.spec.step("load")
    assert step.tags == ["gpu:1", "prev:first", "step:load", "timeout:90s"]
    assert step.upstream == ["first"]
    assert (step.timeout, step.resources.pool, step.resources.gpu) == (90, "gpu", 1)


def test_resource_tags_belong_on_step_cells_when_the_notebook_has_steps():
    assert cell_problems(("x = 1", ["step:a"]), ("y = x", ["gpu:1"])) == [("bad_tag", 1, "a", None)]


def test_without_step_tags_any_cell_may_carry_step_tags():
    result = compile_cells("import math", ("x = math.pi", ["gpu:1", "retry:2"]), ("y = x", ["cpu:4"]))
    assert result.spec.step("step_2").inputs == {"x": "step_1"}
    assert [(s.name, s.resources.gpu, s.retry, s.resources.cpu) for s in result.spec.steps] == [
        ("step_1", 1, 2, 1.0),
        ("step_2", 0, 0, 4.0),
    ]


def test_a_definitions_cell_with_tags_is_a_step_without_step_tags():
    result = compile_cells(("import math", ["pool:special"]), "x = math.pi")
    assert [s.name for s in result.spec.steps] == ["step_1", "step_2"]
    assert result.spec.step("step_1").resources.pool == "special"


def test_papermill_injected_parameters_cell_is_ignored_with_a_warning():
    result = compile_cells(("n = 5", ["parameters"]), ("n = 500", ["injected-parameters"]), "m = n * 2")
    assert [(p.name, p.default) for p in result.spec.parameters] == [("n", 5)]
    assert result.spec.step("step_1").parameters == ["n"]
    assert [(w.code, w.cell) for w in result.warnings] == [("injected_parameters", 1)]


def test_concurrency_tag_sets_the_step_limit_and_refuses_nonsense():
    ok = compile_cells(("xs = [1, 2]", ["step:a"]), ("y = item", ["step:b", "foreach:xs", "concurrency:4"]))
    assert ok.spec.step("b").concurrency == 4 and ok.spec.step("a").concurrency is None
    assert cell_problems(("x = 1", ["step:a", "concurrency:0"])) == [("bad_tag", 0, "a", None)]
