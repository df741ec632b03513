"""MLflow's run-search grammar, parsed once for the API and the dashboards.

    filter   := clause ( AND clause )*
    clause   := ident comparator value | ident IS [NOT] NULL
    ident    := [ type "." ] key        type: metric(s) param(s) parameter(s) tag(s)
                                              attribute(s) attr run dataset(s)
    key      := bare | `back quoted` | "double quoted"
    value    := 'string' | "string" | number | ( value, … )
    order_by := ident [ ASC | DESC ]

MLflow has no OR and no parentheses other than IN lists; neither does this.
Errors carry the position and a message a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TYPE_ALIASES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
DATASET_FIELDS = {"name", "digest", "context"}


@dataclass(frozen=True)
class Grammar:
    """What one kind of entity can be searched by; runs and experiments share the syntax."""

    kinds: frozenset[str]
    string_attributes: frozenset[str]
    numeric_attributes: frozenset[str]
    list_attributes: frozenset[str]
    aliases: dict

    @property
    def attributes(self) -> frozenset[str]:
        return self.string_attributes | self.numeric_attributes


RUNS = Grammar(
    kinds=frozenset({"metric", "param", "tag", "attribute", "dataset"}),
    string_attributes=frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri"}),
    numeric_attributes=frozenset({"start_time", "end_time"}),
    list_attributes=frozenset({"run_id"}),
    aliases={"created": "start_time", "Created": "start_time", "run name": "run_name", "run_uuid": "run_id"},
)
EXPERIMENTS = Grammar(
    kinds=frozenset({"tag", "attribute"}),
    string_attributes=frozenset({"name", "experiment_id"}),
    numeric_attributes=frozenset({"creation_time", "last_update_time"}),
    list_attributes=frozenset({"name", "experiment_id"}),
    aliases={},
)

NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
STRING_OPS = {"=", "!=", "LIKE", "ILIKE"}
NULL_OPS = {"IS NULL", "IS NOT NULL"}
LIST_OPS = {"IN", "NOT IN"}


class SearchSyntaxError(ValueError):
    """An invalid filter or order_by; the message says what and where."""


@dataclass(frozen=True)
class Clause:
    kind: str  # metric | param | tag | attribute | dataset
    key: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class OrderBy:
    kind: str
    key: str
    ascending: bool


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<squote>'(?:[^'\\]|\\.|'')*')
  | (?P<dquote>"(?:[^"\\]|\\.)*")
  | (?P<bquote>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<word>[\w.\-/:]+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SearchSyntaxError(f"Unexpected character {text[pos]!r} at position {pos}.")
        kind = match.lastgroup
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    inner = token.text[1:-1]
    if token.kind == "squote":
        return inner.replace("''", "'").replace("\\'", "'")
    if token.kind == "dquote":
        return inner.replace('\\"', '"')
    return inner


class _Cursor:
    def __init__(self, tokens: list[_Token], text: str, grammar: Grammar):
        self.tokens, self.i, self.text, self.grammar = tokens, 0, text, grammar

    def peek(self, offset: int = 0) -> _Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise SearchSyntaxError(f"The filter ends too early: {self.text!r}.")
        self.i += 1
        return token

    def word_is(self, *words: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.kind == "word" and token.text.upper() in words


def _identifier(cursor: _Cursor) -> tuple[str, str]:
    token = cursor.take()
    grammar = cursor.grammar
    if token.kind in ("bquote", "dquote"):
        return "attribute", _attribute_key(_unquote(token), token.pos, grammar)
    if token.kind != "word":
        raise SearchSyntaxError(f"Expected a key like metrics.acc at position {token.pos}, found {token.text!r}.")
    head, dot, rest = token.text.partition(".")
    if not dot:
        return "attribute", _attribute_key(head, token.pos, grammar)
    kind = TYPE_ALIASES.get(head.lower())
    if kind not in grammar.kinds:
        allowed = ", ".join(f"{k}s" for k in sorted(grammar.kinds))
        raise SearchSyntaxError(f"Unknown key type {head!r} at position {token.pos}; use one of {allowed}.")
    if rest:
        key = rest
    else:  # metrics.`my key` or params."a b"
        quoted = cursor.take()
        if quoted.kind not in ("bquote", "dquote"):
            raise SearchSyntaxError(f"Expected a key after '{head}.' at position {quoted.pos}.")
        key = _unquote(quoted)
    if kind == "attribute":
        key = _attribute_key(key, token.pos, grammar)
    if kind == "dataset" and key not in DATASET_FIELDS:
        raise SearchSyntaxError(f"Datasets are searched by {', '.join(sorted(DATASET_FIELDS))}, not {key!r}.")
    return kind, key


def _attribute_key(key: str, pos: int, grammar: Grammar) -> str:
    key = grammar.aliases.get(key, key)
    if key not in grammar.attributes:
        allowed = ", ".join(sorted(grammar.attributes))
        raise SearchSyntaxError(f"Unknown attribute {key!r} at position {pos}; searchable attributes: {allowed}.")
    return key


def _comparator(cursor: _Cursor) -> str:
    token = cursor.take()
    if token.kind == "op":
        glued = cursor.peek()
        if glued is not None and glued.kind == "op" and glued.pos == token.pos + len(token.text):
            raise SearchSyntaxError(f"Invalid comparator {token.text + glued.text!r} at position {token.pos}.")
        return "!=" if token.text == "<>" else token.text
    if token.kind == "word":
        word = token.text.upper()
        if word in ("LIKE", "ILIKE", "IN"):
            return word
        if word == "NOT" and cursor.word_is("IN"):
            cursor.take()
            return "NOT IN"
        if word == "IS":
            if cursor.word_is("NOT") and cursor.word_is("NULL", offset=1):
                cursor.take(), cursor.take()
                return "IS NOT NULL"
            if cursor.word_is("NULL"):
                cursor.take()
                return "IS NULL"
    raise SearchSyntaxError(f"Invalid comparator {token.text!r} at position {token.pos}.")


def _scalar(cursor: _Cursor) -> Any:
    token = cursor.take()
    if token.kind in ("squote", "dquote"):
        return _unquote(token)
    if token.kind == "number":
        return float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
    raise SearchSyntaxError(
        f"Expected a value at position {token.pos}, found {token.text!r}; quote strings like 'adam'."
    )


def _value_list(cursor: _Cursor) -> tuple:
    opening = cursor.take()
    if opening.kind != "lparen":
        raise SearchSyntaxError(f"IN needs a list like ('a', 'b') at position {opening.pos}.")
    values = [_scalar(cursor)]
    while True:
        token = cursor.take()
        if token.kind == "rparen":
            return tuple(values)
        if token.kind != "comma":
            raise SearchSyntaxError(f"Expected ',' or ')' at position {token.pos}.")
        values.append(_scalar(cursor))


def _check(kind: str, key: str, op: str, value: Any, grammar: Grammar) -> None:
    numeric = kind == "metric" or (kind == "attribute" and key in grammar.numeric_attributes)
    if numeric:
        if op not in NUMERIC_OPS:
            raise SearchSyntaxError(f"{kind}s.{key} compares with {', '.join(sorted(NUMERIC_OPS))}, not {op}.")
        if not isinstance(value, int | float):
            raise SearchSyntaxError(f"{kind}s.{key} is numeric: compare it with a number, not {value!r}.")
        return
    allowed = set(STRING_OPS)
    if kind in ("param", "tag"):
        allowed |= NULL_OPS
    if kind == "dataset" or (kind == "attribute" and key in grammar.list_attributes):
        allowed |= LIST_OPS
    if op not in allowed:
        raise SearchSyntaxError(f"{kind}s.{key} compares with {', '.join(sorted(allowed))}, not {op}.")
    if op in LIST_OPS:
        if not all(isinstance(v, str) for v in value):
            raise SearchSyntaxError(f"The values in {op} (…) must be quoted strings.")
    elif op not in NULL_OPS and not isinstance(value, str):
        raise SearchSyntaxError(f"{kind}s.{key} is a string: quote the value, like '{value}'.")


def like_regex(pattern: str) -> str:
    """SQL LIKE ('%' any run, '_' one char) as an anchored regex that Python's and PostgreSQL's
    regex engines read alike, so LIKE means the same on every database."""
    return "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$"


def parse_filter(text: str | None, grammar: Grammar = RUNS) -> list[Clause]:
    """Parse a filter string into clauses joined by AND. Empty → no clause."""
    if not text or not text.strip():
        return []
    cursor = _Cursor(_tokenize(text), text, grammar)
    clauses = []
    while True:
        kind, key = _identifier(cursor)
        op = _comparator(cursor)
        if op in NULL_OPS:
            value = None
        elif op in LIST_OPS:
            value = _value_list(cursor)
        else:
            value = _scalar(cursor)
        _check(kind, key, op, value, grammar)
        clauses.append(Clause(kind, key, op, value))
        token = cursor.peek()
        if token is None:
            return clauses
        if not cursor.word_is("AND"):
            hint = " (MLflow's grammar has no OR)" if cursor.word_is("OR") else ""
            raise SearchSyntaxError(f"Expected AND at position {token.pos}, found {token.text!r}{hint}.")
        cursor.take()


def parse_order_by(items: list[str] | None, grammar: Grammar = RUNS) -> list[OrderBy]:
    orders = []
    for item in items or []:
        cursor = _Cursor(_tokenize(item), item, grammar)
        kind, key = _identifier(cursor)
        ascending = True
        if cursor.word_is("ASC", "DESC"):
            ascending = cursor.take().text.upper() == "ASC"
        if cursor.peek() is not None:
            raise SearchSyntaxError(f"Invalid order_by {item!r}: expected 'key [ASC|DESC]'.")
        if kind == "dataset":
            raise SearchSyntaxError("Runs cannot be ordered by dataset fields.")
        orders.append(OrderBy(kind, key, ascending))
    return orders
