"""Run search means the same on both databases: PostgreSQL reads the runs' search documents
(tracking/search/documents.py), SQLite joins the tables (search/queries.py). Each filter and
ordering below is answered by the API and by a plain-Python reading of MLflow's semantics over
the same runs, and the two must agree exactly, order included."""

from __future__ import annotations

import math
import re

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.both_databases]

LONG = "x" * 150  # longer than the indexed prefix of a value (search/queries.py)

# name: (params, metrics, tags, start_time)
RUNS = {
    "a": ({"opt": "adam", "note": LONG, "lr": "0.1"}, {"acc": 0.9, "loss": 0.3}, {"stage": "prod"}, 1_000),
    "b": ({"opt": "adam", "note": LONG[:-1] + "y", "lr": "0.01"}, {"acc": 0.4}, {"stage": "dev"}, 2_000),
    "c": ({"opt": "sgd", "lr": "0.1"}, {"acc": 0.95, "loss": "Infinity"}, {"stage": "prod", "x.y": "1"}, 3_000),
    "d": ({}, {"acc": "NaN", "loss": "-Infinity"}, {}, 4_000),
    "e": ({"opt": "a.am", "lr": "1"}, {"acc": 0.9}, {"stage": "Prod"}, 4_000),  # same start as d: run id decides
    "f": ({"opt": "adamw", "lr": "0.001"}, {"loss": 1e-7}, {"stage": "pr%d"}, 500),
    "g": ({"opt": "100% adam", "lr": "10"}, {"acc": 0.0, "loss": -2.5}, {"stage": "prod_1"}, 6_000),
}

FILTERS = [
    "",
    "params.opt = 'adam'",
    f"params.note = '{LONG}'",
    "params.opt = 'adam' and tags.stage = 'prod'",
    "params.opt = 'adam' and metrics.acc > 0.5",
    "metrics.acc = 0.95 and params.opt != 'adam'",
    "params.opt != 'adam'",
    "params.opt IS NULL",
    "params.opt IS NOT NULL and tags.stage IS NULL",
    "metrics.acc >= 0",
    "metrics.acc < 0.9",
    "metrics.acc != 0.9",
    "metrics.loss > 1000",
    "metrics.loss <= -1",
    "metrics.loss < 0.000001 and metrics.loss > 0",
    "tags.stage LIKE 'pr%' and params.opt = 'sgd'",
    "tags.stage LIKE 'pr%'",
    "tags.stage ILIKE 'pr%'",
    "tags.stage LIKE 'prod_'",
    "tags.stage LIKE 'pr%d'",
    "params.opt LIKE 'a.am'",
    "params.opt LIKE '%adam'",
    "params.opt ILIKE '%ADAM%'",
    "params.lr = '0.1' and params.opt != 'sgd'",
    "tags.`x.y` = '1'",
    "tags.stage = 'prod' and params.note IS NULL",
    "attributes.run_name LIKE '%' and params.opt = 'adam'",
    "attributes.start_time >= 3000 and metrics.acc > 0",
]

ORDERS = [
    [],
    ["metrics.acc DESC"],
    ["metrics.acc ASC"],
    ["metrics.loss DESC"],
    ["metrics.loss"],
    ["params.opt"],
    ["params.opt DESC"],
    ["tags.stage ASC", "metrics.acc DESC"],
    ["params.lr DESC", "attributes.start_time ASC"],
]


@pytest.fixture
def runs(ml) -> dict[str, dict]:
    made = {}
    for name, (params, metrics, tags, start) in RUNS.items():
        response = ml.post("runs/create", {"experiment_id": "0", "start_time": start, "run_name": name})
        run_id = response.json()["run"]["info"]["run_id"]
        body = {
            "run_id": run_id,
            "params": [{"key": k, "value": v} for k, v in params.items()],
            "metrics": [{"key": k, "value": v, "timestamp": 1, "step": 0} for k, v in metrics.items()],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        assert ml.post("runs/log-batch", body).status_code == 200
        values = {k: float(v) for k, v in metrics.items()}
        made[name] = {"id": run_id, "start": start, "params": params, "metrics": values, "tags": tags}
    return made


def _like(pattern: str, value: str, *, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_CLAUSE = re.compile(r"(\w+)\.(`[^`]+`|\w+) (IS NOT NULL|IS NULL|LIKE|ILIKE|!=|<=|>=|=|<|>) ?(.*)")


def _matches(run: dict, clause: str) -> bool:
    kind, key, op, raw = _CLAUSE.fullmatch(clause).groups()
    key = key.strip("`")
    if kind == "attributes":
        value = {"run_name": run["name"], "start_time": run["start"]}[key]
        target = raw.strip("'") if raw.startswith("'") else float(raw)
        return _like(target, value, ignore_case=False) if op == "LIKE" else _COMPARE[op](value, target)
    else:
        value = run[kind].get(key)
    if op == "IS NULL":
        return value is None
    if op == "IS NOT NULL":
        return value is not None
    if value is None or (kind == "metrics" and math.isnan(value)):
        return False  # a missing key, or NaN, matches no comparison
    if op in ("LIKE", "ILIKE"):
        return _like(raw.strip("'"), value, ignore_case=op == "ILIKE")
    target = raw.strip("'") if raw.startswith("'") else float(raw)
    return _COMPARE[op](value, target)


def _oracle(runs: dict[str, dict], filter_string: str, order_by: list[str]) -> list[str]:
    clauses = [c for c in re.split(r" and ", filter_string) if c]
    found = [
        dict(run, name=name) for name, run in runs.items() if all(_matches(dict(run, name=name), c) for c in clauses)
    ]
    # MLflow's order: the given keys, then start_time DESC, then run id.
    found.sort(key=lambda r: r["id"])
    found.sort(key=lambda r: -r["start"])
    for item in reversed(order_by):
        name, _, direction = item.partition(" ")
        kind, key = name.split(".", 1)
        descending = direction == "DESC"
        if kind == "attributes":
            found.sort(key=lambda r: r["start"], reverse=descending)
            continue
        present = [r for r in found if r[kind].get(key) is not None and not _is_nan(r[kind][key])]
        nan = [r for r in found if r[kind].get(key) is not None and _is_nan(r[kind][key])]
        missing = [r for r in found if r[kind].get(key) is None]
        present.sort(key=lambda r: r[kind][key], reverse=descending)
        found = present + nan + missing
    return [r["name"] for r in found]


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _search(ml, filter_string: str, order_by: list[str]) -> list[str]:
    body = {"experiment_ids": ["0"], "filter": filter_string, "order_by": order_by, "max_results": 100}
    response = ml.post("runs/search", body)
    assert response.status_code == 200, (filter_string, response.content)
    return [r["info"]["run_name"] for r in response.json().get("runs", [])]


@pytest.mark.parametrize("filter_string", FILTERS)
def test_filters_agree_with_mlflow_semantics(ml, runs, filter_string):
    expected = _oracle(runs, filter_string, [])
    assert _search(ml, filter_string, []) == expected


@pytest.mark.parametrize("order_by", ORDERS, ids=lambda o: ",".join(o) or "default")
def test_orderings_agree_with_mlflow_semantics(ml, runs, order_by):
    """Numbers first, then NaN metrics, then runs without the key, in either direction."""
    assert _search(ml, "", order_by) == _oracle(runs, "", order_by)
    assert _search(ml, "metrics.acc >= 0", order_by) == _oracle(runs, "metrics.acc >= 0", order_by)


def test_the_oracle_is_not_vacuous(runs):
    """The filters above select different, non-trivial sets (a filter matching all or nothing
    everywhere would test nothing)."""
    results = {f: tuple(_oracle(runs, f, [])) for f in FILTERS}
    assert len(set(results.values())) > len(FILTERS) * 2 // 3
    assert _oracle(runs, "tags.stage LIKE 'prod_'", []) == []  # '_' is exactly one character
    assert _oracle(runs, "", ["metrics.acc DESC"])[:3] == ["c", "e", "a"]


def test_the_values_a_search_returns(ml, runs):
    """A searched run carries all its params, tags and latest metrics, sorted by key, with NaN and
    infinities in proto-JSON's spelling."""
    [found] = [r for r in ml.post("runs/search", {"experiment_ids": ["0"], "max_results": 100}).json()["runs"]
               if r["info"]["run_name"] == "d"]  # fmt: skip
    assert found["data"]["metrics"] == [
        {"key": "acc", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "loss", "value": "-Infinity", "timestamp": 1, "step": 0},
    ]
    [found] = [
        r for r in ml.post("runs/search", {"experiment_ids": ["0"], "filter": "tags.stage = 'pr%d'"}).json()["runs"]
    ]
    assert found["data"]["metrics"] == [{"key": "loss", "value": 1e-7, "timestamp": 1, "step": 0}]
    assert found["data"]["params"] == [{"key": "lr", "value": "0.001"}, {"key": "opt", "value": "adamw"}]
    assert [t["key"] for t in found["data"]["tags"]] == sorted(t["key"] for t in found["data"]["tags"])
    assert {"key": "stage", "value": "pr%d"} in found["data"]["tags"]
