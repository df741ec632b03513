"""MLflow's run-search grammar: what parses, what is refused and how the error reads."""

from __future__ import annotations

import pytest

from cellar_server.tracking.search.parser import Clause, OrderBy, SearchSyntaxError, parse_filter, parse_order_by


@pytest.mark.parametrize(
    "text,expected",
    [
        ("metrics.acc > 0.5", [Clause("metric", "acc", ">", 0.5)]),
        ("metric.acc >= 1", [Clause("metric", "acc", ">=", 1)]),
        ("params.lr = '0.01'", [Clause("param", "lr", "=", "0.01")]),
        ('params.opt = "adam"', [Clause("param", "opt", "=", "adam")]),
        ("tags.`my tag` LIKE 'x%'", [Clause("tag", "my tag", "LIKE", "x%")]),
        ("tags.\"a b\" ILIKE '%Y'", [Clause("tag", "a b", "ILIKE", "%Y")]),
        ("params.model.depth != '3'", [Clause("param", "model.depth", "!=", "3")]),
        ("attributes.run_id IN ('a', 'b')", [Clause("attribute", "run_id", "IN", ("a", "b"))]),
        ("run_id NOT IN ('a')", [Clause("attribute", "run_id", "NOT IN", ("a",))]),
        ("params.x IS NULL", [Clause("param", "x", "IS NULL")]),
        ("tags.x is not null", [Clause("tag", "x", "IS NOT NULL")]),
        ("created > 100", [Clause("attribute", "start_time", ">", 100)]),
        ("attr.status = 'FINISHED'", [Clause("attribute", "status", "=", "FINISHED")]),
        ("`run name` = 'x'", [Clause("attribute", "run_name", "=", "x")]),
        ("metrics.loss < -1e-3", [Clause("metric", "loss", "<", -0.001)]),
        ("params.q = 'it''s'", [Clause("param", "q", "=", "it's")]),
        (
            "metrics.a > 1 and params.b = 'x' AND tags.c != 'y'",
            [Clause("metric", "a", ">", 1), Clause("param", "b", "=", "x"), Clause("tag", "c", "!=", "y")],
        ),
        ("", []),
        ("   ", []),
    ],
)
def test_parses(text, expected):
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("metrics.acc >> 1", "Invalid comparator '>>'"),
        ("metrics.acc > 'x'", "compare it with a number"),
        ("metrics.acc LIKE 1", "compares with"),
        ("params.lr = 1", "quote the value"),
        ("params.lr > '1'", "compares with"),
        ("status IN ('a')", "compares with"),
        ("foo.bar = 'x'", "Unknown key type 'foo'"),
        ("nonsense = 'x'", "Unknown attribute 'nonsense'"),
        ("metrics.a > 1 OR metrics.b > 1", "no OR"),
        ("metrics.a > 1 metrics.b > 1", "Expected AND"),
        ("metrics.a >", "ends too early"),
        ("params.a = 'x' AND", "ends too early"),
        ("params.a IN ('x' 'y')", "Expected ',' or ')'"),
        ("datasets.size = 'x'", "Datasets are searched by"),
        ("params.a = 'x' ; drop", "Unexpected character ';'"),
    ],
)
def test_refuses_with_a_clear_message(text, fragment):
    with pytest.raises(SearchSyntaxError, match=None) as caught:
        parse_filter(text)
    assert fragment in str(caught.value)


def test_order_by():
    assert parse_order_by(["metrics.acc DESC", "params.`lr` ASC", "start_time", "attributes.run_name"]) == [
        OrderBy("metric", "acc", False),
        OrderBy("param", "lr", True),
        OrderBy("attribute", "start_time", True),
        OrderBy("attribute", "run_name", True),
    ]
    with pytest.raises(SearchSyntaxError):
        parse_order_by(["metrics.acc DOWN"])
    with pytest.raises(SearchSyntaxError):
        parse_order_by(["datasets.name"])
