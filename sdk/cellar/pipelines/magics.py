"""IPython magics and `!shell` lines in a cell, and the normalised code the step keeps.

Nothing is silently kept or lost:

* display-only line magics are dropped: `%matplotlib`, `%config`, `%precision`, `%pprint`,
  `%colors`, `%xmode`, `%autoreload`/`%aimport`, `%load_ext autoreload` (and `%reload_ext`),
  `%pdb`, `%doctest_mode`, `%automagic`, `%who`/`%whos`, and help (`obj?`, `??obj`, `%pinfo`…);
* `%time <statement>` and a `%%time` cell are *unwrapped*: IPython runs the statement once, in
  the user's namespace, and only prints how long it took, so the code without the magic does
  exactly what the notebook did. `%timeit`/`%%timeit` are errors: they run the code many times
  in a scratch namespace, which is not what a step should do;
* `%pip`, `%conda` (and mamba), `!pip …`, `!conda …`, `!{sys.executable} -m pip …` and
  `%%bash`/`%%sh` cells that run them are `pip_magic` errors: packages belong in the
  environment, whose lock the version records, and the pool must provide them;
* any other line magic, `!command`, `x = !command` and any other `%%cell_magic` is a `magic`
  error naming the cell and line.

A dropped line leaves nothing in the step's code, except inside an indented block, where it
becomes `pass` at the same indentation so the block stays valid. `CleanCell.lines` maps each
line of the cleaned code back to its line in the cell, so problems always name cell lines.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field

from cellar.pipelines.errors import Problem

DISPLAY_MAGICS = frozenset(
    {
        "matplotlib",
        "config",
        "precision",
        "pprint",
        "colors",
        "xmode",
        "autoreload",
        "aimport",
        "pdb",
        "doctest_mode",
        "automagic",
        "who",
        "whos",
        "pinfo",
        "pinfo2",
        "pdoc",
        "pdef",
        "psource",
        "pfile",
    }
)
PIP_MAGICS = frozenset({"pip", "conda", "mamba", "micromamba"})
SHELL_CELL_MAGICS = frozenset({"bash", "sh", "script", "system", "sx"})

_LINE_MAGIC = re.compile(r"^(\s*)%(?!%)([A-Za-z_]\w*)(.*)$")
_CELL_MAGIC = re.compile(r"^\s*%%([A-Za-z_]\w*)(.*)$")
_SHELL = re.compile(r"^(\s*)!(.*)$")
_ASSIGN_MAGIC = re.compile(r"^\s*[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*([!%])(.*)$")
_HELP = re.compile(r"^\s*(\?{1,2}\s*[A-Za-z_][\w.]*|[A-Za-z_][\w.\[\]()'\"]*\s*\?{1,2})\s*$")
# Any line that could be a magic, shell or help line; a cell without one is plain Python.
_MAYBE_MAGIC = re.compile(r"^\s*[%!?]|\?\s*$|=\s*[!%]", re.MULTILINE)
_PIP_WORD = re.compile(r"(^|[\s/}!%])(pip3?|conda|mamba|micromamba)(\s|$)")

PIP_HINT = (
    "install the package in the environment you promote from instead (the version's environment lock records "
    "it, and the pool must provide it), then remove this line"
)


@dataclass
class CleanCell:
    code: str  # normalised code, no magics
    lines: list[int]  # lines[i] = the cell line (1-based) of code line i + 1
    problems: list[Problem] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # cell lines dropped as display-only

    def cell_line(self, code_line: int | None) -> int | None:
        if code_line is None or not self.lines:
            return code_line
        return self.lines[min(max(code_line, 1), len(self.lines)) - 1]


def _runs_pip(text: str) -> bool:
    return bool(_PIP_WORD.search(text))


def _cell_magic(name: str, lines: list[str], first: int, cell: int) -> tuple[list[str], list[Problem], bool]:
    """A `%%magic` cell: returns (replacement lines, problems, body kept)."""
    body = lines[first + 1 :]
    if name == "time":
        return [""] * (first + 1) + body, [], True
    line = first + 1
    if name in SHELL_CELL_MAGICS and _runs_pip("\n".join(body)):
        message = f"%%{name} cell runs pip/conda; {PIP_HINT}"
        return [], [Problem("pip_magic", message, cell=cell, line=line)], False
    if name == "timeit":
        message = "%%timeit runs the cell many times to measure it; remove the magic (or tag the cell `skip`)"
    elif name in SHELL_CELL_MAGICS:
        message = (
            f"%%{name} runs a shell script, which a pipeline step cannot run; do it in Python "
            "(subprocess) or tag the cell `skip`"
        )
    else:
        message = (
            f"the cell magic %%{name} cannot run in a pipeline step; rewrite the cell in plain Python or tag it `skip`"
        )
    return [], [Problem("magic", message, cell=cell, line=line)], False


def _line_problem(kind: str, name: str, rest: str, cell: int, line: int) -> tuple[str, str | None, Problem | None]:
    """Classify one magic line: ("drop" | "unwrap" | "error", replacement, problem)."""
    if kind == "help":
        return "drop", None, None
    if kind == "shell":
        if _runs_pip(rest):
            return (
                "error",
                None,
                Problem("pip_magic", f"'!{rest.strip()}' runs pip/conda; {PIP_HINT}", cell, None, line),
            )
        message = (
            f"the shell command '!{rest.strip()}' cannot run in a pipeline step; use subprocess in Python "
            "or tag the cell `skip`"
        )
        return "error", None, Problem("magic", message, cell=cell, line=line)
    if kind == "assign":
        if _runs_pip(rest):
            return "error", None, Problem("pip_magic", f"this line runs pip/conda; {PIP_HINT}", cell=cell, line=line)
        message = (
            "assigning the result of a magic or shell command cannot run in a pipeline step; "
            "compute it in Python or tag the cell `skip`"
        )
        return "error", None, Problem("magic", message, cell=cell, line=line)
    # kind == "line": %name rest
    words = rest.split()
    if name in DISPLAY_MAGICS:
        return "drop", None, None
    if name in ("load_ext", "reload_ext") and words[:1] == ["autoreload"]:
        return "drop", None, None
    if name == "time":
        return "unwrap", rest.strip(), None
    if name in PIP_MAGICS:
        return "error", None, Problem("pip_magic", f"%{name}{rest} installs packages; {PIP_HINT}", cell, None, line)
    if name in ("sx", "system") and _runs_pip(rest):
        return "error", None, Problem("pip_magic", f"%{name}{rest} runs pip/conda; {PIP_HINT}", cell, None, line)
    if name == "timeit":
        message = "%timeit runs the statement many times to measure it; remove the magic (or tag the cell `skip`)"
    else:
        message = (
            f"the magic %{name} cannot run in a pipeline step; rewrite the line in plain Python, remove it, "
            "or tag the cell `skip`"
        )
    return "error", None, Problem("magic", message, cell=cell, line=line)


def _classify(line: str) -> tuple[str, str, str, str] | None:
    """(kind, indent, name, rest) for a magic/shell/help line, else None."""
    match = _LINE_MAGIC.match(line)
    if match:
        return "line", match.group(1), match.group(2), match.group(3)
    match = _SHELL.match(line)
    if match:
        return "shell", match.group(1), "", match.group(2)
    match = _ASSIGN_MAGIC.match(line)
    if match:
        return "assign", line[: len(line) - len(line.lstrip())], "", match.group(2) + match.group(3)
    if _HELP.match(line) and not line.rstrip().endswith("??=") and "?" in line:
        return "help", line[: len(line) - len(line.lstrip())], "", ""
    return None


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def clean_cell(source: str, cell: int) -> CleanCell:
    """Remove magics from one cell and normalise it (see the module docstring)."""
    raw = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    problems: list[Problem] = []
    dropped: list[int] = []
    lines = list(raw)
    first = next((i for i, text in enumerate(raw) if text.strip()), None)
    cell_match = _CELL_MAGIC.match(raw[first]) if first is not None else None
    if cell_match:
        lines, problems, kept = _cell_magic(cell_match.group(1), raw, first, cell)
        if not kept:
            return CleanCell(code="", lines=[], problems=problems)
    # Plain Python (the common case) needs no line-by-line scan.
    text = "\n".join(lines)
    if _MAYBE_MAGIC.search(text) and not _parses(text):
        index = 0
        while index < len(lines):
            text = lines[index]
            found = _classify(text)
            if not found:
                index += 1
                continue
            kind, indent, name, rest = found
            end = index
            while lines[end].rstrip().endswith("\\") and end + 1 < len(lines):  # continued magic line
                end += 1
            action, replacement, problem = _line_problem(kind, name, rest, cell, index + 1)
            if problem:
                problems.append(problem)
            if action == "drop":
                dropped.append(index + 1)
            if action == "unwrap":
                lines[index] = indent + (replacement or "pass")
            else:
                lines[index] = indent + "pass" if indent else ""
            for extra in range(index + 1, end + 1):
                lines[extra] = ""
            index = end + 1
    return _normalise(lines, problems, dropped)


def _normalise(lines: list[str], problems: list[Problem], dropped: list[int]) -> CleanCell:
    """rstrip each line, drop leading/trailing blank lines, remove lines that were dropped
    at top level, dedent the whole cell; keep the map back to cell lines."""
    kept: list[tuple[int, str]] = []
    dropped_set = set(dropped)
    for number, text in enumerate(lines, start=1):
        text = text.rstrip()
        if number in dropped_set and not text:
            continue  # a display-only magic at top level: gone without a trace
        kept.append((number, text))
    while kept and not kept[0][1]:
        kept.pop(0)
    while kept and not kept[-1][1]:
        kept.pop()
    code = textwrap.dedent("\n".join(text for _, text in kept))
    return CleanCell(code=code, lines=[number for number, _ in kept], problems=problems, dropped=dropped)
