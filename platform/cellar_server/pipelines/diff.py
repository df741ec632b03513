"""The difference between two versions' specs: per step (code, prelude, tags, resources, data
flow), parameters and environment. Works on the stored spec dicts (`PipelineSpec.to_dict()`).

`version_diff` is what the API returns (unified diffs); `side_by_side` turns two texts into
rows for the diff page.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

# Step fields compared as values (code and prelude get a line diff instead).
STEP_FIELDS = (
    "tags",
    "resources",
    "foreach",
    "join",
    "branch_of",
    "retry",
    "timeout",
    "cache",
    "inputs",
    "outputs",
    "upstream",
    "parameters",
    "imports",
)


def _lines(text: str) -> list[str]:
    return (text or "").splitlines()


def unified(old: str, new: str, *, old_label: str, new_label: str) -> str:
    """A unified diff of two texts ('' when they are equal)."""
    if (old or "") == (new or ""):
        return ""
    return "\n".join(difflib.unified_diff(_lines(old), _lines(new), old_label, new_label, lineterm=""))


def _merged_order(old: list[str], new: list[str]) -> list[str]:
    """Both versions' step names in one sequence: new's order, removed steps where they stood."""
    order: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            order += new[j1:j2]
        else:
            order += [name for name in old[i1:i2] if name not in new]
            order += new[j1:j2]
    seen: set[str] = set()
    return [n for n in order if not (n in seen or seen.add(n))]


def _step_diff(name: str, old: dict | None, new: dict | None, labels: tuple[str, str]) -> dict[str, Any]:
    old_label, new_label = (f"{labels[0]}/{name}", f"{labels[1]}/{name}")
    if old is None or new is None:
        status = "added" if old is None else "removed"
    else:
        status = "unchanged"
    old, new = old or {}, new or {}
    code = unified(old.get("code", ""), new.get("code", ""), old_label=old_label, new_label=new_label)
    prelude = unified(
        old.get("prelude", ""),
        new.get("prelude", ""),
        old_label=f"{old_label} prelude",
        new_label=f"{new_label} prelude",
    )
    changes = {}
    if status == "unchanged":
        for key in STEP_FIELDS:
            if old.get(key) != new.get(key):
                changes[key] = {"from": old.get(key), "to": new.get(key)}
        if code or prelude or changes:
            status = "changed"
    return {"name": name, "status": status, "code_diff": code, "prelude_diff": prelude, "changes": changes}


def _parameter_diff(old: list[dict], new: list[dict]) -> list[dict[str, Any]]:
    before = {p["name"]: p for p in old}
    after = {p["name"]: p for p in new}
    rows = []
    for name in _merged_order(list(before), list(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        status = "added" if a is None else "removed" if b is None else "changed"
        rows.append(
            {
                "name": name,
                "status": status,
                "from": None if a is None else {"default": a.get("default"), "type": a.get("type")},
                "to": None if b is None else {"default": b.get("default"), "type": b.get("type")},
            }
        )
    return rows


def _mapping_diff(old: dict[str, str], new: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    return {
        "added": [{"name": k, "version": new[k]} for k in sorted(set(new) - set(old))],
        "removed": [{"name": k, "version": old[k]} for k in sorted(set(old) - set(new))],
        "changed": [{"name": k, "from": old[k], "to": new[k]} for k in sorted(set(old) & set(new)) if old[k] != new[k]],
    }


def environment_diff(old: dict, new: dict) -> dict[str, Any]:
    python = None
    if old.get("python") != new.get("python"):
        python = {"from": old.get("python"), "to": new.get("python")}
    packages = _mapping_diff(old.get("environment") or {}, new.get("environment") or {})
    modules = _mapping_diff(old.get("modules") or {}, new.get("modules") or {})
    changed = python is not None or any(packages.values()) or any(modules.values())
    return {"changed": changed, "python": python, "packages": packages, "modules": modules}


def version_diff(old: dict, new: dict, *, labels: tuple[str, str] = ("a", "b")) -> dict[str, Any]:
    """What changed from spec `old` to spec `new` (both `PipelineSpec.to_dict()`)."""
    old_steps = {s["name"]: s for s in old.get("steps", [])}
    new_steps = {s["name"]: s for s in new.get("steps", [])}
    order = _merged_order(list(old_steps), list(new_steps))
    steps = [_step_diff(n, old_steps.get(n), new_steps.get(n), labels) for n in order]
    parameters = _parameter_diff(old.get("parameters", []), new.get("parameters", []))
    environment = environment_diff(old, new)
    summary = {status: sum(1 for s in steps if s["status"] == status) for status in ("added", "removed", "changed")}
    return {
        "identical": old.get("hash") is not None and old.get("hash") == new.get("hash"),
        "format": None
        if old.get("format") == new.get("format")
        else {"from": old.get("format"), "to": new.get("format")},
        "summary": summary,
        "steps": steps,
        "parameters": parameters,
        "environment": environment,
    }


# --- side by side, for the page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    kind: str  # equal | replace | delete | insert | skip
    left_no: int | None
    left: str
    right_no: int | None
    right: str


def side_by_side(old: str, new: str, *, context: int = 3) -> list[Row]:
    """Rows pairing old and new lines; runs of equal lines longer than 2×context fold into one 'skip' row."""
    a, b = _lines(old), _lines(new)
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    opcodes = matcher.get_opcodes()
    for index, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            length = i2 - i1
            keep_head = context if index > 0 else 0
            keep_tail = context if index < len(opcodes) - 1 else 0
            if len(opcodes) == 1 or length <= keep_head + keep_tail + 1:
                pairs = range(length)
                rows += [Row("equal", i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k]) for k in pairs]
                continue
            rows += [Row("equal", i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k]) for k in range(keep_head)]
            hidden = length - keep_head - keep_tail
            rows.append(Row("skip", None, f"{hidden} unchanged line{'s' if hidden != 1 else ''}", None, ""))
            start = length - keep_tail
            rows += [Row("equal", i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k]) for k in range(start, length)]
            continue
        left, right = list(range(i1, i2)), list(range(j1, j2))
        for k in range(max(len(left), len(right))):
            li = left[k] if k < len(left) else None
            ri = right[k] if k < len(right) else None
            kind = (
                tag
                if tag != "replace"
                else ("replace" if li is not None and ri is not None else "delete" if li is not None else "insert")
            )
            rows.append(
                Row(
                    kind,
                    None if li is None else li + 1,
                    "" if li is None else a[li],
                    None if ri is None else ri + 1,
                    "" if ri is None else b[ri],
                )
            )
    return rows
