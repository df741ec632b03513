"""Scopes: what a function, lambda, class body or comprehension reads from outside itself,
which `global` names it assigns and which outside names it mutates (Python's scoping rules:
parameters and comprehension variables are local, class-body names are invisible to methods,
`global` names are module names, `nonlocal` ones the enclosing function's).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


@dataclass
class Summary:
    """What a nested scope reads from outside it and what it changes outside it."""

    free: dict[str, int] = field(default_factory=dict)  # from the enclosing scope
    deferred: dict[str, int] = field(default_factory=dict)  # a class's methods' free names: read when used
    module_free: dict[str, int] = field(default_factory=dict)  # `global` names: always module level
    global_writes: set[str] = field(default_factory=set)
    mutates: dict[str, int] = field(default_factory=dict)


def root_name(node: ast.expr) -> ast.Name | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node if isinstance(node, ast.Name) else None


def module_of(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module.split(".")[0]] if node.module and not node.level else []
    return [alias.name.split(".")[0] for alias in node.names]


def import_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    names = []
    for alias in node.names:
        if alias.name == "*":  # `from m import *`: the names are unknown; "*" stands for them
            names.append("*")
            continue
        names.append(alias.asname or (alias.name.split(".")[0] if isinstance(node, ast.Import) else alias.name))
    return names


def imported_modules(node: ast.AST) -> set[str]:
    return {m for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom) for m in module_of(sub)}


class _ScopeWalker:
    """Summarise a function, lambda, class body or comprehension."""

    def __init__(self, is_class: bool = False) -> None:
        # Names bound in a class body are not visible in its methods.
        self.is_class = is_class
        self.stores: set[str] = set()
        self.bound: set[str] = set()
        self.globals: set[str] = set()
        self.reads: dict[str, int] = {}
        self.mutated: dict[str, int] = {}
        self.nested: list[Summary] = []

    # -- bindings first: Python decides a name's scope from every binding in the block ----
    def collect(self, nodes: list[ast.AST]) -> None:
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Global):
                self.globals.update(node.names)
            elif isinstance(node, ast.Nonlocal):
                continue  # the enclosing function's: left free here
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                self.bound.add(node.id)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                self.bound.update(import_names(node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.bound.add(node.name)
                continue  # its body is its own scope
            elif isinstance(node, ast.Lambda):
                continue
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.bound.add(node.rest)
            elif isinstance(node, COMPREHENSIONS):
                # Only walrus targets inside a comprehension bind in this scope.
                for sub in ast.walk(node):
                    if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                        self.bound.add(sub.target.id)
                continue
            stack.extend(ast.iter_child_nodes(node))
        self.bound -= self.globals

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.reads.setdefault(node.id, node.lineno)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            for sub in outer_parts(node):
                self.visit(sub)
            self.nested.append(summarize(node))
            return
        if isinstance(node, COMPREHENSIONS):
            self.visit(node.generators[0].iter)
            self.nested.append(summarize(node))
            return
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            self.mutated.setdefault(node.func.value.id, node.lineno)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            self.reads.setdefault(node.target.id, node.lineno)  # `n += 1` reads n first
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Attribute | ast.Subscript):
                        root = root_name(sub)
                        if root is not None:
                            self.mutated.setdefault(root.id, node.lineno)
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def result(self, extra_local: set[str] = frozenset()) -> Summary:
        local = self.bound | extra_local
        summary = Summary()
        for name, line in self.reads.items():
            if name in self.globals:
                summary.module_free.setdefault(name, line)
            elif name not in local:
                summary.free.setdefault(name, line)
        summary.global_writes = self.globals & self.stores
        for name, line in self.mutated.items():
            if name in self.globals or name not in local:
                summary.mutates.setdefault(name, line)
        inner_local = local if not self.is_class else set()
        for inner in self.nested:
            for name, line in {**inner.free, **inner.deferred}.items():
                if name in self.globals:
                    summary.module_free.setdefault(name, line)
                elif name not in inner_local:
                    (summary.deferred if self.is_class else summary.free).setdefault(name, line)
            for name, line in inner.module_free.items():
                summary.module_free.setdefault(name, line)
            summary.global_writes |= inner.global_writes
            for name, line in inner.mutates.items():
                if name in self.globals or name not in inner_local:
                    summary.mutates.setdefault(name, line)
        return summary


def outer_parts(node: ast.AST) -> list[ast.AST]:
    """The parts of a def/lambda/class evaluated where it is written."""
    parts: list[ast.AST] = []
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        parts.extend(d for d in args.defaults + args.kw_defaults if d is not None)
        if not isinstance(node, ast.Lambda):
            parts.extend(node.decorator_list)
            every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
            parts.extend(a.annotation for a in every if a.annotation is not None)
            if node.returns is not None:
                parts.append(node.returns)
    elif isinstance(node, ast.ClassDef):
        parts.extend(node.decorator_list + node.bases + [k.value for k in node.keywords])
    return parts


def summarize(node: ast.AST) -> Summary:
    """Free names, `global` writes and mutations of a function, lambda, class or comprehension."""
    walker = _ScopeWalker(is_class=isinstance(node, ast.ClassDef))
    params: set[str] = set()
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a}
        body = node.body if isinstance(node.body, list) else [node.body]
    elif isinstance(node, ast.ClassDef):
        body = node.body
    else:  # a comprehension: targets bind here, the first iterable was read outside
        body = []
        for index, generator in enumerate(node.generators):
            walker.collect([generator.target])
            if index:
                body.append(generator.iter)
            body.extend(generator.ifs)
        body.extend([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])
    walker.collect(body)
    for sub in body:
        for inner in ast.walk(sub):
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                walker.stores.add(inner.id)
    for sub in body:
        walker.visit(sub)
    return walker.result(params)
