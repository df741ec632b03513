"""The cell-tag grammar: Kale's and papermill's tags plus Cellar's.

    step:<name> | block:<name>     starts a step (name: lowercase letters, digits, _ and -)
    prev:<name>                    an explicit edge from another step (repeatable)
    imports, functions             code prepended to every step (Kale)
    parameters | pipeline-parameters   the pipeline's parameters (papermill / Kale)
    skip                           the cell is not part of the pipeline
    foreach:<iterable>[:<item>]    fan out over an iterable, binding each element to <item> (default `item`)
    join                           collect the branches of the open foreach
    pool:<name> gpu:<n> cpu:<n> memory:<size>   where and with what the step runs
    retry:<n> timeout:<duration> cache:off|on   how it runs
    concurrency:<n>                at most n tasks of the step run at once (per run; for wide fan-outs)
    secrets:<name>[,<name>]        team secrets or connections the step may read (docs/data.md)

`injected-parameters` (the cell papermill adds to an executed notebook) is recognised and
ignored, with a warning: it holds one run's values, not the pipeline's defaults.

Sizes: plain bytes, or K/M/G/T (powers of 1000) and Ki/Mi/Gi/Ti (powers of 1024), with an
optional trailing B, case-insensitive units: `512Mi`, `4Gi`, `2G`, `1.5GB`. Durations: plain
seconds or a number followed by s, m, h or d: `90`, `90s`, `10m`, `2h`.

Unknown or malformed tags are `bad_tag` problems naming the cell; where a tag belongs (only on
a `step:` cell, say) is checked by the compiler, which knows whether the notebook has steps.
"""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, field

from cellar.data.declared import parse_secrets_tag
from cellar.pipelines.errors import Problem
from cellar.pipelines.spec import STEP_NAME, Foreach

POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)\s*([kmgtp]i?)?b?$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "p": 1000**5,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
    "pi": 1024**5,
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)\s*([smhd]?)$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

# Tags that only make sense on the cell that starts a step.
STEP_TAG_KINDS = (
    "prev",
    "foreach",
    "join",
    "pool",
    "gpu",
    "cpu",
    "memory",
    "retry",
    "timeout",
    "cache",
    "concurrency",
    "secrets",
)
ROLE_TAGS = ("imports", "functions", "parameters", "skip")

KNOWN = (
    "step:<name>, block:<name>, prev:<name>, imports, functions, parameters, pipeline-parameters, skip, "
    "foreach:<iterable>[:<item>], join, pool:<name>, gpu:<n>, cpu:<n>, memory:<size>, retry:<n>, "
    "timeout:<seconds>, cache:off, concurrency:<n>, secrets:<name>[,<name>]"
)

# Kale tags we do not take, with what to write instead.
_KALE_HINTS = {
    "limit": "Kale's `limit:` tag is not used here; write gpu:<n>, cpu:<n> or memory:<size>",
    "pipeline-metrics": "Kale's `pipeline-metrics` cell is not supported; log metrics with cellar.log_metric",
    "annotation": "pod annotations are set on the pool, not on a cell",
    "label": "pod labels are set on the pool, not on a cell",
    "image": "the image is the pool's; choose a pool with pool:<name>",
}


@dataclass
class CellTags:
    """The meaning of one cell's tags."""

    step: str | None = None
    prev: list[str] = field(default_factory=list)
    role: str | None = None  # "imports" | "functions" | "parameters" | "skip" | "injected-parameters"
    foreach: Foreach | None = None
    join: bool = False
    pool: str | None = None
    gpu: int | None = None
    cpu: float | None = None
    memory: int | None = None
    retry: int | None = None
    timeout: int | None = None
    cache: bool | None = None
    concurrency: int | None = None
    secrets: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # the tags as written, sorted
    step_level: list[str] = field(default_factory=list)  # tags that belong on a step cell


def parse_size(text: str) -> int:
    """`512Mi` -> 536870912, `2G` -> 2000000000, `1.5GB` -> 1500000000. Raises ValueError."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(text)
    number, unit = match.groups()
    value = float(number) * _SIZE_UNITS[(unit or "").lower()]
    if value <= 0 or not math.isfinite(value):
        raise ValueError(text)
    return int(round(value))


def parse_duration(text: str) -> int:
    """`90` or `90s` -> 90, `10m` -> 600, `2h` -> 7200 (whole seconds). Raises ValueError."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(text)
    number, unit = match.groups()
    value = float(number) * _DURATION_UNITS[unit.lower()]
    if value <= 0:
        raise ValueError(text)
    return int(math.ceil(value))


def _identifier(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text)


def parse_tags(tags: list[str], cell: int) -> tuple[CellTags, list[Problem]]:
    """Parse one cell's tags; every unknown, malformed or conflicting tag is a `bad_tag`."""
    result = CellTags()
    problems: list[Problem] = []
    seen_kinds: dict[str, str] = {}

    def bad(tag: str, why: str) -> None:
        problems.append(Problem("bad_tag", f"tag '{tag}': {why}", cell=cell))

    def once(kind: str, tag: str) -> bool:
        if kind in seen_kinds:
            bad(tag, f"the cell already has '{seen_kinds[kind]}'; keep one of them")
            return False
        seen_kinds[kind] = tag
        return True

    for raw in tags:
        tag = raw.strip()
        if not tag:
            continue
        result.written.append(tag)
        head, sep, rest = tag.partition(":")
        if not sep:
            if tag in ("imports", "functions", "skip", "parameters", "pipeline-parameters", "injected-parameters"):
                role = "parameters" if tag == "pipeline-parameters" else tag
                if result.role and result.role != role:
                    bad(tag, f"a cell cannot be both '{result.role}' and '{role}'")
                result.role = role
            elif tag == "join":
                if once("join", tag):
                    result.join = True
                    result.step_level.append(tag)
            elif tag in _KALE_HINTS:
                bad(tag, _KALE_HINTS[tag])
            else:
                bad(tag, f"unknown tag; the tags are {KNOWN}")
            continue
        if head in ("step", "block"):
            if not STEP_NAME.match(rest):
                bad(tag, "a step name is 1-63 lowercase letters, digits, '_' or '-', starting with a letter or '_'")
            elif result.step and result.step != rest:
                bad(tag, f"the cell already starts step '{result.step}'; a cell starts one step")
            else:
                result.step = rest
        elif head == "prev":
            if not STEP_NAME.match(rest):
                bad(tag, "prev:<name> names a step: lowercase letters, digits, '_' or '-'")
            elif rest not in result.prev:
                result.prev.append(rest)
                result.step_level.append(tag)
        elif head == "foreach":
            iterable, _, item = rest.partition(":")
            if not _identifier(iterable) or (item and not _identifier(item)) or rest.count(":") > 1:
                bad(tag, "write foreach:<iterable> or foreach:<iterable>:<item>, both Python names")
            elif once("foreach", tag):
                result.foreach = Foreach(iterable=iterable, item=item or "item")
                result.step_level.append(tag)
        elif head == "pool":
            if not POOL_NAME.match(rest):
                bad(tag, "a pool name is letters, digits, '_', '.' or '-'")
            elif once("pool", tag):
                result.pool = rest
                result.step_level.append(tag)
        elif head in ("gpu", "retry"):
            if not rest.isdigit():
                bad(tag, f"{head}:<n> takes a whole number, like {head}:1")
            elif once(head, tag):
                setattr(result, head, int(rest))
                result.step_level.append(tag)
        elif head == "concurrency":
            if not rest.isdigit() or int(rest) < 1:
                bad(tag, "concurrency:<n> takes a whole number of tasks of at least 1, like concurrency:4")
            elif once("concurrency", tag):
                result.concurrency = int(rest)
                result.step_level.append(tag)
        elif head == "secrets":
            try:
                names = parse_secrets_tag(rest)
            except ValueError as exc:
                bad(tag, f"secrets:<name>[,<name>] takes secret or connection names; '{exc}' is not one")
                continue
            result.secrets = sorted(set(result.secrets) | set(names))
            result.step_level.append(tag)
        elif head == "cpu":
            try:
                value = float(rest)
                if not math.isfinite(value) or value <= 0:
                    raise ValueError(rest)
            except ValueError:
                bad(tag, "cpu:<n> takes a positive number of cores, like cpu:2 or cpu:0.5")
                continue
            if once("cpu", tag):
                result.cpu = value
                result.step_level.append(tag)
        elif head == "memory":
            try:
                value = parse_size(rest)
            except ValueError:
                bad(tag, "memory:<size> takes a size like 512Mi, 4Gi, 2G, 1.5GB or a number of bytes")
                continue
            if once("memory", tag):
                result.memory = value
                result.step_level.append(tag)
        elif head == "timeout":
            try:
                value = parse_duration(rest)
            except ValueError:
                bad(tag, "timeout:<duration> takes seconds, like timeout:90, 90s, 10m or 2h")
                continue
            if once("timeout", tag):
                result.timeout = value
                result.step_level.append(tag)
        elif head == "cache":
            if rest not in ("off", "on"):
                bad(tag, "write cache:off to always rerun the step (cache:on is the default)")
            elif once("cache", tag):
                result.cache = rest == "on"
                result.step_level.append(tag)
        elif head in _KALE_HINTS:
            bad(tag, _KALE_HINTS[head])
        else:
            bad(tag, f"unknown tag; the tags are {KNOWN}")
    if result.role and (result.step or result.step_level):
        other = f"step:{result.step}" if result.step else result.step_level[0]
        problems.append(
            Problem(
                "bad_tag",
                f"a '{result.role}' cell cannot also carry '{other}'; put the step's code in its own cell",
                cell=cell,
            )
        )
    result.written.sort()
    return result, problems
