"""Keep secret values out of a step's captured output.

Once a step reads a secret, its `sys.stdout` and `sys.stderr` are wrapped so that each write has
every known secret value replaced by `***` before it reaches the task's log. Limits, stated in
docs/data.md: a value split across two separate writes, bytes written straight to the file
descriptors (C extensions, subprocesses) and handlers that kept a reference to the old stream
are not rewritten.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

MASK = "***"
_values: set[str] = set()
_lock = threading.Lock()


def remember(value: str, *, install: bool) -> None:
    if len(value) < 4:  # masking "a" or "12" everywhere would mangle logs and reveal more than hide
        return
    with _lock:
        _values.add(value)
    if install:
        install_wrappers()


def scrub(text: str) -> str:
    for value in sorted(_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


class _Redacting:
    def __init__(self, inner: Any):
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(scrub(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_wrappers() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, _Redacting):
            setattr(sys, name, _Redacting(stream))
