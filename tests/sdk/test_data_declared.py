"""What a step declares (secrets: tags, literal cellar.secret/connect/dataset calls), and the tag's grammar."""

from __future__ import annotations

import pytest

from cellar.data.declared import declared_names, names_in_code
from cellar.pipelines.tags import parse_tags


@pytest.mark.parametrize(
    "code,names",
    [
        ("import cellar\npw = cellar.secret('dwh')", {"dwh"}),
        ('engine = cellar.connect("warehouse")', {"warehouse"}),
        ("df = cellar.dataset('warehouse', query='select 1')", {"warehouse"}),
        ("df = cellar.dataset('s3://bucket/x.csv', connection='lake')", {"lake"}),
        ("from cellar import secret as s\nx = s('api-key')", {"api-key"}),
        ("name = 'dwh'\npw = cellar.secret(name)", set()),  # not literal: must be declared by tag
        ("pw = other.secret('dwh')", set()),
        ("def broken(:", set()),
    ],
    ids=["secret", "connect", "dataset-sql", "dataset-s3-connection", "imported-alias", "variable", "other", "syntax"],
)
def test_literal_calls_declare_names(code, names):
    assert names_in_code(code) == names


def test_tags_and_prelude_declare_too():
    names = declared_names(code="x = 1", prelude="pw = cellar.secret('p')", tags=["secrets:a,b", "step:load"])
    assert names == {"a", "b", "p"}


def test_the_secrets_tag_belongs_to_a_step_and_checks_its_names():
    tags, problems = parse_tags(["step:load", "secrets:dwh,lake"], cell=0)
    assert not problems and tags.secrets == ["dwh", "lake"] and "secrets:dwh,lake" in tags.step_level
    _, problems = parse_tags(["step:load", "secrets:Bad Name"], cell=3)
    assert problems and problems[0].code == "bad_tag" and "Bad Name" in problems[0].message
