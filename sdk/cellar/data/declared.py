"""The secrets and connections a step declares, read statically from its tags and code.

A step may read a secret (or use a connection) only if it declared the name:

- a `secrets:<name>[,<name>…]` tag on the step's cell (names of secrets or connections), or
- a literal call in the step's code or prelude: `cellar.secret("x")`, `cellar.connect("x")`,
  `cellar.dataset("x", query=…)` (a name, not a URI), or the same functions imported from
  `cellar` (`from cellar import secret`).

The server computes this from the version's spec when a task asks (so a spec compiled before
secrets existed still works, and the version hash is unchanged); the compiler checks the tag.
"""

from __future__ import annotations

import ast
import re

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_FUNCS = ("secret", "connect", "dataset")


def parse_secrets_tag(rest: str) -> list[str]:
    """`a,b` -> ["a", "b"]; raises ValueError naming the bad part."""
    names = [part.strip() for part in rest.split(",")]
    for name in names:
        if not NAME.match(name):
            raise ValueError(name)
    return sorted(set(names))


def _called_name(node: ast.Call, imported: set[str]) -> str | None:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in _FUNCS:
        if isinstance(func.value, ast.Name) and func.value.id == "cellar":
            return func.attr
    if isinstance(func, ast.Name) and func.id in imported:
        return func.id
    return None


def names_in_code(code: str) -> set[str]:
    """Names in literal `cellar.secret/connect/dataset("name")` calls; code that does not parse has none."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in ("cellar", "cellar.data")
        for alias in node.names
        if alias.name in _FUNCS
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _called_name(node, imported) is None:
            continue
        args = [node.args[0]] if node.args else []
        args += [kw.value for kw in node.keywords if kw.arg in ("name", "connection")]
        for arg in args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and NAME.match(arg.value):
                found.add(arg.value)
    return found


def names_in_tags(tags: list[str]) -> set[str]:
    found: set[str] = set()
    for tag in tags:
        head, sep, rest = tag.partition(":")
        if sep and head == "secrets":
            try:
                found.update(parse_secrets_tag(rest))
            except ValueError:
                continue
    return found


def declared_names(*, code: str, prelude: str = "", tags: list[str] | None = None) -> set[str]:
    """Every secret or connection name a step declares."""
    return names_in_tags(tags or []) | names_in_code(prelude) | names_in_code(code)
