"""The pure parts: version diffs, side-by-side rows, the DAG layout and SVG, pools from settings."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from cellar_server.pipelines import dag, diff, pools
from cellar_server.pipelines.checks import pools_configured
from cellar_server.pipelines.services import rollback_target_id


def step(name: str, ups=(), inputs=None, code: str = "pass", **extra) -> dict:
    return {
        "name": name,
        "code": code,
        "prelude": "",
        "upstream": list(ups),
        "inputs": inputs or {},
        "resources": {"pool": "cpu", "cpu": 1.0, "memory": None, "gpu": 0},
        **extra,
    }


def spec(*steps, parameters=(), python="3.11", lock=None, digest="h") -> dict:
    return {
        "format": 1,
        "hash": digest,
        "python": python,
        "environment": lock or {},
        "modules": {},
        "parameters": list(parameters),
        "steps": list(steps),
    }


# --- diff ---------------------------------------------------------------------------------------------------


def test_steps_keep_their_place_when_added_and_removed():
    old = spec(step("a"), step("b"), step("c"))
    new = spec(step("a"), step("x"), step("c"), step("d"))
    result = diff.version_diff(old, new)
    assert [(s["name"], s["status"]) for s in result["steps"]] == [
        ("a", "unchanged"),
        ("b", "removed"),
        ("x", "added"),
        ("c", "unchanged"),
        ("d", "added"),
    ]
    assert result["summary"] == {"added": 2, "removed": 1, "changed": 0}


def test_code_prelude_and_fields_are_compared():
    old = spec(step("a", code="x = 1\ny = 2", prelude="import os", retry=0, tags=["step:a"]))
    new = spec(step("a", code="x = 1\ny = 3", prelude="import sys", retry=3, tags=["retry:3", "step:a"]))
    [row] = diff.version_diff(old, new, labels=("v1", "v2"))["steps"]
    assert row["status"] == "changed"
    assert "--- v1/a" in row["code_diff"] and "-y = 2" in row["code_diff"] and "+y = 3" in row["code_diff"]
    assert "+import sys" in row["prelude_diff"]
    assert row["changes"] == {
        "retry": {"from": 0, "to": 3},
        "tags": {"from": ["step:a"], "to": ["retry:3", "step:a"]},
    }


def test_parameters_and_environment():
    old = spec(
        step("a"),
        parameters=[{"name": "lr", "default": 0.1, "type": "float"}, {"name": "gone", "default": 1, "type": "int"}],
        lock={"numpy": "1.0", "torch": "2.0"},
    )
    new = spec(
        step("a"),
        parameters=[{"name": "lr", "default": 0.1, "type": "float"}, {"name": "epochs", "default": 3, "type": "int"}],
        python="3.12",
        lock={"numpy": "1.1", "pandas": "2.2"},
    )
    result = diff.version_diff(old, new)
    assert [(p["name"], p["status"]) for p in result["parameters"]] == [("gone", "removed"), ("epochs", "added")]
    env = result["environment"]
    assert env["changed"] and env["python"] == {"from": "3.11", "to": "3.12"}
    assert env["packages"]["changed"] == [{"name": "numpy", "from": "1.0", "to": "1.1"}]
    assert env["packages"]["added"] == [{"name": "pandas", "version": "2.2"}]
    assert env["packages"]["removed"] == [{"name": "torch", "version": "2.0"}]
    assert diff.version_diff(old, old)["identical"] is True


def test_side_by_side_pairs_lines_and_folds_long_equal_runs():
    old = "\n".join(f"line {i}" for i in range(20)) + "\nold tail"
    new = "\n".join(f"line {i}" for i in range(20)) + "\nnew tail\nextra"
    rows = diff.side_by_side(old, new, context=2)
    kinds = [r.kind for r in rows]
    assert kinds[0] == "skip" and "18 unchanged lines" in rows[0].left
    assert kinds[-2:] == ["replace", "insert"]
    assert rows[-2].left == "old tail" and rows[-2].right == "new tail" and rows[-2].left_no == 21
    assert rows[-1].left_no is None and rows[-1].right == "extra"
    assert [r.kind for r in diff.side_by_side("", "a\nb")] == ["insert", "insert"]
    assert [r.kind for r in diff.side_by_side("a\nb", "")] == ["delete", "delete"]
    assert [r.kind for r in diff.side_by_side("a\nb", "a\nb")] == ["equal", "equal"]


# --- DAG ----------------------------------------------------------------------------------------------------


def diamond() -> dict:
    return spec(
        step("load"),
        step("left", ["load"], {"df": "load"}),
        step("right", ["load"], {"df": "load"}, resources={"pool": "gpu", "cpu": 1, "memory": None, "gpu": 2}),
        step("merge", ["left", "right", "load"], {"a": "left", "b": "right", "raw": "load"}, join=True),
    )


def test_layout_layers_by_longest_path_and_lanes_skipping_edges():
    plan = dag.layout(diamond())
    layers = {n.name: n.layer for n in plan.nodes}
    assert layers == {"load": 0, "left": 1, "right": 1, "merge": 2}
    nodes = {n.name: n for n in plan.nodes}
    assert nodes["left"].y == nodes["right"].y and nodes["left"].x < nodes["right"].x
    lanes = {(e.source, e.target): e.lane for e in plan.edges}
    assert lanes[("load", "merge")] is not None and lanes[("load", "merge")] > nodes["right"].x + dag.BOX_W
    assert lanes[("load", "left")] is None
    assert plan.width >= lanes[("load", "merge")]


def test_the_svg_marks_kinds_badges_edges_and_escapes():
    svg = str(dag.render_svg(diamond()))
    assert svg.startswith('<svg class="dag"') and 'aria-label="Pipeline graph: 4 steps, 5 edges"' in svg
    assert 'class="dag-node dag-join" data-step="merge"' in svg
    assert 'class="dag-node dag-step dag-gpu" data-step="right"' in svg and "gpu ×2 GPU" in svg
    assert 'data-edge="load-&gt;merge"' in svg and ">raw</text>" in svg and ">df</text>" in svg
    hostile = spec(step("a", outputs=["<x>"]), step("b", ["a"], {"<img src=x>": "a"}))
    rendered = str(dag.render_svg(hostile))
    assert "<img" not in rendered and "&lt;img src=x&gt;" in rendered
    assert str(dag.render_svg(spec())) == ""


def test_a_cycle_in_a_bad_spec_does_not_hang_the_layout():
    plan = dag.layout(spec(step("a", ["b"]), step("b", ["a"])))
    assert {n.name for n in plan.nodes} == {"a", "b"}


def test_foreach_badges():
    s = step("t", foreach={"iterable": "regions", "item": "region"})
    assert ("foreach", "foreach region") in dag.badges(s)
    assert ("foreach", "foreach region in regions") in dag.badges(s, full=True)
    assert ("branch", "per item") in dag.badges(step("u", branch_of="t"))


# --- pools --------------------------------------------------------------------------------------------------


def test_default_pool_is_this_machine():
    offers = pools.parse_pools("")
    assert list(offers) == ["cpu"] and offers["cpu"].gpu == 0 and offers["cpu"].cpu >= 1
    assert offers["cpu"].memory is None or offers["cpu"].memory > 0


def test_pools_from_json():
    offers = pools.parse_pools('{"cpu": {"cpu": 4, "memory": "16Gi"}, "gpu": {"cpu": 8, "memory": 1024, "gpu": 2}}')
    assert offers["cpu"].memory == 16 * 1024**3 and offers["gpu"].gpu == 2 and offers["gpu"].memory == 1024


@pytest.mark.parametrize(
    "raw,message",
    [
        ("{nope", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"Big Pool": {}}', "not a pool name"),
        ('{"cpu": {"cores": 4}}', "unknown keys: cores"),
        ('{"cpu": {"memory": "lots"}}', "not a size"),
        ('{"cpu": {"cpu": 0}}', "cpu must be positive"),
        ('{"cpu": 3}', "must be an object"),
    ],
)
def test_bad_pools_say_what_is_wrong(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        pools.parse_pools(raw)


def test_a_bad_pools_setting_is_a_startup_error(settings):
    settings.CELLAR_POOLS = '{"cpu": {"cpu": -1}}'
    [error] = pools_configured(None)
    assert error.id == "cellar.E010" and "CELLAR_POOLS" in error.hint
    settings.CELLAR_POOLS = ""
    assert pools_configured(None) == []


# --- rollback target ----------------------------------------------------------------------------------------


class Move:
    def __init__(self, kind: str, to: int):
        self.kind, self.to_version_id = kind, to


@pytest.mark.parametrize(
    "history,target",
    [
        ([], None),
        ([("promote", 1)], None),
        ([("promote", 1), ("promote", 2)], 1),
        ([("promote", 1), ("promote", 2), ("rollback", 1)], None),
        ([("promote", 1), ("promote", 2), ("promote", 3), ("rollback", 2)], 1),
        ([("promote", 1), ("promote", 2), ("rollback", 1), ("promote", 3)], 1),
        ([("promote", 1), ("promote", 2), ("promote", 1)], 2),
    ],
)
def test_rollback_target(history, target):
    assert rollback_target_id([Move(k, v) for k, v in history]) == target


def test_svg_ids_are_stable():
    assert re.findall(r'data-step="([^"]+)"', str(dag.render_svg(diamond()))) == ["load", "left", "right", "merge"]
