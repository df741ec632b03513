"""A small progress display for local runs, on stderr.

On a terminal: one line redrawn in place (a bar, tasks done/total, the running steps,
elapsed time), with finished tasks printed above it as they end. Elsewhere (CI logs, a
pipe): one plain line per task that ends, so the log reads top to bottom.

Hand-written on purpose: the SDK is installed into every notebook and step environment
and stays dependency-light (requests, nbformat, pyflakes); tqdm or rich would be a new
dependency for about sixty lines.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class ProgressState:
    done: int  # tasks in a final state
    total: int  # tasks known so far (a fan-out adds its tasks once its iterable is known)
    running: list[str]
    elapsed: float
    failed: int = 0
    # Tasks that ended since the previous report: (label, state, seconds or None).
    ended: list[tuple[str, str, float | None]] = field(default_factory=list)
    finished: bool = False


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """Callable with a `ProgressState`; redraws at most every `interval` seconds on a terminal."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float = 0.1):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, state: ProgressState) -> None:
        if self.tty:
            self._draw_tty(state)
        else:
            self._draw_plain(state)

    def _draw_plain(self, state: ProgressState) -> None:
        for label, task_state, seconds in state.ended:
            took = f" in {seconds:.1f}s" if seconds is not None else ""
            self.stream.write(
                f"[{format_elapsed(state.elapsed)}] {label} {task_state}{took} ({state.done}/{state.total})\n"
            )
        if state.finished:
            self.stream.write(f"[{format_elapsed(state.elapsed)}] {state.done}/{state.total} tasks finished\n")
        self.stream.flush()

    def _draw_tty(self, state: ProgressState) -> None:
        now = time.monotonic()
        if state.ended:
            self._clear()
            for label, task_state, seconds in state.ended:
                took = f" {seconds:.1f}s" if seconds is not None else ""
                mark = "✓" if task_state in ("succeeded", "cached") else "✗"
                self.stream.write(f"  {mark} {label} {task_state}{took}\n")
        elif not state.finished and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        width = shutil.get_terminal_size((80, 20)).columns
        bar_width = 20
        filled = int(bar_width * state.done / state.total) if state.total else 0
        bar = "#" * filled + "-" * (bar_width - filled)
        failed = f" {state.failed} failed" if state.failed else ""
        running = f" running: {', '.join(state.running)}" if state.running else ""
        line = f"[{bar}] {state.done}/{state.total}{failed} {format_elapsed(state.elapsed)}{running}"
        self._clear()
        self.stream.write(line[: max(width - 1, 10)])
        self._drawn = True
        if state.finished:
            self.stream.write("\n")
            self._drawn = False
        self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False
