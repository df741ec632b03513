"""Names a cell reads, binds and mutates: the static analysis behind inputs and outputs.

Kale runs pyflakes over each step and reads its "undefined name" reports; we walk the
`ast` ourselves, which gives the same answers plus what pyflakes does not report: the order
of reads and binds at top level, mutations, and the free variables of every function.

Per cell (`analyze_cell`, no knowledge of other cells) we record, in evaluation order:

* `read` a name at top level (including free variables of lambdas and comprehensions, which
  run where they are written);
* `bind` a name: assignment, augmented and annotated assignment (with a value), tuple/star
  unpacking, `for`/`with`/`except` targets, walrus, `match` captures;
* `mutate` a name: `x[...] = …`, `x.attr = …`, `del x[...]`, `x += …` on a subscript or
  attribute, and a method call on a plain name (`x.append(1)`, `model.fit(X, y)`), also inside
  expressions. Whether `x` is a module (then it is only read) is decided per step;
* `define` a name: an import or a def/class at top level. Definitions are not data: another
  step that uses them gets the statement in its prelude. A definition carries what it needs
  when used: a function's free variables (a `global` it assigns, names it mutates), a class's
  methods' free variables. Imports nested in a block are definitions that cannot be moved,
  except a top-level `try`/`if` that holds only imports (the `try: import ujson as json`
  pattern), which moves as a whole.

Function, lambda, class and comprehension scopes (scopes.py) follow Python's rules: comprehension
variables and parameters are never read from outside, class-body names are not visible in
methods, `global` names are module names, `nonlocal` ones belong to the enclosing function.
"""

from __future__ import annotations

import ast
import builtins
import sys
from dataclasses import dataclass, field

from cellar.pipelines.scopes import (
    COMPREHENSIONS,
    Summary,
    import_names,
    imported_modules,
    module_of,
    outer_parts,
    root_name,
    summarize,
)

BUILTINS = frozenset(dir(builtins)) | {
    "__name__",
    "__doc__",
    "__builtins__",
    "__spec__",
    "__loader__",
    "__package__",
    "__annotations__",
}

_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(eq=False)
class Definition:
    name: str
    kind: str  # "import" | "def" | "class"
    source: str  # the statement as written (decorators included), for a prelude
    cell: int
    line: int  # cell line of the statement
    free: dict[str, int] = field(default_factory=dict)  # what using it reads -> cell line
    # What merely running the statement reads (decorators, defaults, bases, a class body):
    # a class carried into a step only so that its instances unpickle needs just these.
    immediate: dict[str, int] = field(default_factory=dict)
    global_writes: set[str] = field(default_factory=set)
    mutates: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)  # top-level modules it imports
    movable: bool = True  # False: an import nested in a block; it stays in its step

    @property
    def position(self) -> tuple[int, int]:
        return (self.cell, self.line)


@dataclass
class Event:
    op: str  # "read" | "bind" | "mutate" | "define" | "delete"
    name: str
    line: int  # cell line
    definition: Definition | None = None
    risk: str | None = None  # bind only: why the bound value cannot be serialized, if it obviously cannot


@dataclass
class CellAnalysis:
    cell: int
    events: list[Event] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    modules: set[str] = field(default_factory=set)  # every module the cell imports, anywhere
    only_definitions: bool = True  # imports, defs, classes, docstrings and `pass` only


def _risk(value: ast.expr | None) -> str | None:
    """Why a value bound straight from this expression obviously cannot be serialized."""
    if isinstance(value, ast.Lambda):
        return "a lambda"
    if isinstance(value, ast.GeneratorExp):
        return "a generator"
    if not isinstance(value, ast.Call):
        return None
    func = value.func
    dotted = []
    while isinstance(func, ast.Attribute):
        dotted.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        dotted.append(func.id)
    name = ".".join(reversed(dotted))
    last = dotted[0] if dotted else ""
    if name in ("open", "io.open", "gzip.open", "bz2.open", "lzma.open"):
        return f"an open file ({name}(...))"
    if name in ("socket.socket", "socket", "socket.create_connection"):
        return f"a socket ({name}(...))"
    if last == "connect":
        return f"a connection ({name}(...))"
    if name in ("threading.Lock", "threading.RLock", "threading.Thread", "Lock", "RLock", "Thread"):
        return f"a thread or lock ({name}(...))"
    return None


def _movable_import_block(node: ast.stmt) -> bool:
    """A top-level try/if whose every branch only imports (or sets a fallback constant)."""
    if not isinstance(node, ast.Try | ast.If):
        return False
    statements = [n for n in ast.walk(node) if isinstance(n, ast.stmt) and n is not node]
    if not any(isinstance(n, ast.Import | ast.ImportFrom) for n in statements):
        return False
    for sub in statements:
        if isinstance(sub, ast.Import | ast.ImportFrom | ast.Pass | ast.Try | ast.If):
            continue
        if isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Constant):
            continue
        if isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Constant):
            continue
        return False
    return True


class _ModuleWalker:
    """Top-level statements of one cell, in evaluation order, as events."""

    def __init__(self, cell: int, code: str, line_of) -> None:
        self.result = CellAnalysis(cell=cell)
        self.code_lines = code.split("\n")
        self.code = code
        self.line_of = line_of

    def event(self, op: str, name: str, lineno: int, **extra) -> None:
        self.result.events.append(Event(op, name, self.line_of(lineno), **extra))

    def source_of(self, node: ast.stmt) -> str:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        text = "\n".join(self.code_lines[first - 1 : node.end_lineno])
        segment = ast.get_source_segment(self.code, node)
        # A statement sharing its lines with others (`import os; x = 1`) is cut out alone.
        if segment is not None and not getattr(node, "decorator_list", None) and text.strip() != segment.strip():
            try:
                ast.parse(text)
                compound = len(ast.parse(text).body) > 1
            except SyntaxError:
                compound = True
            if compound:
                return segment
        return text

    def summary_events(self, summary: Summary, lineno: int) -> None:
        for name in summary.free:
            self.event("read", name, lineno)
        for name in summary.module_free:
            self.event("read", name, lineno)
        for name in summary.global_writes:
            self.event("bind", name, lineno)
        for name in summary.mutates:
            self.event("mutate", name, lineno)

    # -- expressions at module level --------------------------------------------------------
    def expr(self, node: ast.AST | None) -> None:
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.event("read", node.id, node.lineno)
            return
        if isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.event("bind", node.target.id, node.lineno)
            return
        if isinstance(node, ast.Lambda):
            # Usually called right where it is written (df.apply(lambda r: r * k)): read now.
            for part in outer_parts(node):
                self.expr(part)
            self.summary_events(summarize(node), node.lineno)
            return
        if isinstance(node, COMPREHENSIONS):
            self.expr(node.generators[0].iter)
            for sub in ast.walk(node):
                if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    self.event("bind", sub.target.id, sub.lineno)
            self.summary_events(summarize(node), node.lineno)
            return
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            for child in ast.iter_child_nodes(node):
                self.expr(child)
            self.event("mutate", node.func.value.id, node.lineno)
            return
        for child in ast.iter_child_nodes(node):
            self.expr(child)

    def target(self, node: ast.AST, lineno: int, value: ast.expr | None = None) -> None:
        """Bind (or mutate) an assignment target after its value was read."""
        if isinstance(node, ast.Name):
            self.event("bind", node.id, node.lineno, risk=_risk(value))
        elif isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                self.target(element, lineno)
        elif isinstance(node, ast.Starred):
            self.target(node.value, lineno)
        elif isinstance(node, ast.Attribute | ast.Subscript):
            self.expr(node.value)
            if isinstance(node, ast.Subscript):
                self.expr(node.slice)
            root = root_name(node)
            if root is not None:
                self.event("mutate", root.id, node.lineno)

    # -- statements -------------------------------------------------------------------------
    def statements(self, body: list[ast.stmt], top: bool) -> None:
        for node in body:
            self.statement(node, top)

    def define(
        self,
        node: ast.stmt,
        name: str,
        kind: str,
        summary: Summary | None,
        movable: bool,
        immediate: dict[str, int] | None = None,
        modules: set[str] | None = None,
    ) -> None:
        if modules is None:
            modules = imported_modules(node)
        definition = Definition(
            name=name,
            kind=kind,
            source=self.source_of(node) if movable else "",
            cell=self.result.cell,
            line=self.line_of(node.lineno),
            modules=modules,
            movable=movable,
        )
        if summary is not None:
            needs = {**(immediate or {}), **summary.free, **summary.deferred, **summary.module_free}
            definition.free = {n: self.line_of(line) for n, line in needs.items()}
            definition.immediate = {n: self.line_of(line) for n, line in (immediate or {}).items()}
            definition.global_writes = set(summary.global_writes)
            definition.mutates = set(summary.mutates)
        if movable:
            self.result.definitions.append(definition)
        self.event("define", name, node.lineno, definition=definition)

    def statement(self, node: ast.stmt, top: bool) -> None:
        result = self.result
        if top and not (
            isinstance(node, (*_DEFINITIONS, ast.Pass))
            or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
            or _movable_import_block(node)
        ):
            result.only_definitions = False
        if isinstance(node, ast.Import | ast.ImportFrom):
            result.modules.update(module_of(node))
            modules = set(module_of(node))
            for name in import_names(node):
                self.define(node, name, "import", None, movable=top, modules=modules)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            immediate: dict[str, int] = {}
            for part in outer_parts(node):
                self.expr(part)
                for sub in ast.walk(part):
                    if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                        immediate.setdefault(sub.id, sub.lineno)
            summary = summarize(node)
            if isinstance(node, ast.ClassDef):
                # The class body runs now; its methods only when used.
                for name, line in summary.free.items():
                    self.event("read", name, node.lineno)
                    immediate.setdefault(name, line)
            modules = imported_modules(node)
            result.modules |= modules
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            self.define(node, node.name, kind, summary, movable=top, immediate=immediate, modules=modules)
        elif top and _movable_import_block(node):
            names = [
                n for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom) for n in import_names(sub)
            ]
            names += [
                t.id
                for sub in ast.walk(node)
                if isinstance(sub, ast.Assign)
                for t in sub.targets
                if isinstance(t, ast.Name)
            ]
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    result.modules.update(module_of(sub))
            for part in ast.walk(node):
                if isinstance(part, ast.If):
                    self.expr(part.test)
            for name in dict.fromkeys(names):
                self.define(node, name, "import", None, movable=True)
        elif isinstance(node, ast.Assign):
            self.expr(node.value)
            for target in node.targets:
                self.target(target, node.lineno, node.value)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self.expr(node.value)
                self.event("read", node.target.id, node.lineno)
                self.event("bind", node.target.id, node.lineno)
            else:
                self.expr(node.value)
                self.target(node.target, node.lineno)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.annotation)
            if node.value is not None:
                self.expr(node.value)
                self.target(node.target, node.lineno, node.value)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter)
            self.target(node.target, node.lineno)
            self.statements(node.body, False)
            self.statements(node.orelse, False)
        elif isinstance(node, ast.While | ast.If):
            self.expr(node.test)
            self.statements(node.body, False)
            self.statements(node.orelse, False)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars, node.lineno, item.context_expr)
            self.statements(node.body, False)
        elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
            self.statements(node.body, False)
            for handler in node.handlers:
                self.expr(handler.type)
                if handler.name:
                    self.event("bind", handler.name, handler.lineno)
                self.statements(handler.body, False)
            self.statements(node.orelse, False)
            self.statements(node.finalbody, False)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            for case in node.cases:
                for sub in ast.walk(case.pattern):
                    if isinstance(sub, ast.MatchValue | ast.MatchClass):
                        self.expr(sub.value if isinstance(sub, ast.MatchValue) else sub.cls)
                    name = getattr(sub, "name", None) or getattr(sub, "rest", None)
                    if isinstance(name, str):
                        self.event("bind", name, case.pattern.lineno)
                self.expr(case.guard)
                self.statements(case.body, False)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.event("delete", target.id, node.lineno)
                else:
                    self.target(target, node.lineno)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            return  # no effect at module level
        else:  # Expr, Return, Raise, Assert, Pass, Break, Continue, TypeAlias
            for child in ast.iter_child_nodes(node):
                self.expr(child)


def analyze_cell(code: str, cell: int, line_of=lambda line: line) -> CellAnalysis:
    """Events and definitions of one cell's (magic-free) code. Raises SyntaxError."""
    tree = ast.parse(code)
    walker = _ModuleWalker(cell, code, line_of)
    try:
        walker.statements(tree.body, True)
    except RecursionError:
        # A very long expression (`a1 + a2 + ... + a2000`) nests deeper than the default
        # limit allows our recursive walk; give this one cell more room.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 50_000))
        try:
            walker = _ModuleWalker(cell, code, line_of)
            walker.statements(tree.body, True)
        finally:
            sys.setrecursionlimit(limit)
    # Imports at any depth were collected on the way: in blocks by `statement`, in
    # functions and classes from their definitions.
    walker.result.modules = {m for m in walker.result.modules if m}
    return walker.result
