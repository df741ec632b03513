"""A failed step as a person needs it: the exception, the user's frames, the notebook cell and line."""

from __future__ import annotations

import sys
import traceback
import types
from dataclasses import asdict, dataclass
from typing import Any

from cellar.pipelines.spec import Step, StepSource


@dataclass(frozen=True)
class Frame:
    """One frame of user code. `cell` is the notebook cell index, "prelude" for the prelude,
    None when unknown; `cell_line` is 1-based within that cell (or within the prelude)."""

    function: str
    line: int  # in the step's code (or prelude)
    cell: int | str | None
    cell_line: int | None
    text: str = ""


class StepFailed(Exception):
    """A step did not complete. Carries what a person needs to find the failing line: the
    step, the exception, the user-code frames and the notebook cell and line."""

    def __init__(
        self,
        step: str,
        exc_type: str,
        message: str,
        *,
        phase: str = "code",
        frames: list[Frame] | None = None,
        cell: int | str | None = None,
        line: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ):
        self.step = step
        self.exc_type = exc_type
        self.message = message
        self.phase = phase  # parameters | prelude | inputs | code | outputs
        self.frames = list(frames or [])
        self.cell = cell
        self.line = line
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(self.summary())

    def location(self) -> str:
        """`cell 4, line 2`; a failure inside a prelude function (an `imports` / `functions`
        cell) also names the step's own line that called into it."""
        parts = []
        if self.cell == "prelude":
            caller = next((f for f in reversed(self.frames) if isinstance(f.cell, int)), None)
            if caller is not None:
                parts.append(f"cell {caller.cell}, line {caller.cell_line}")
            inner = self.frames[-1].function if self.frames else ""
            inside = f" in {inner}()" if inner and inner != "<module>" else ""
            parts.append(f"prelude line {self.line}{inside}" if self.line is not None else "prelude")
            return ", ".join(parts)
        if self.cell is not None:
            parts.append(f"cell {self.cell}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        return ", ".join(parts)

    def where(self) -> str:
        location = self.location()
        return f"step '{self.step}', {location}" if location else f"step '{self.step}'"

    def summary(self) -> str:
        return f"{self.where()}: {self.exc_type}: {self.message}"

    def format_traceback(self) -> str:
        """The user-code traceback, each frame named by cell and line."""
        if not self.frames:
            return ""
        lines = ["Traceback (user code, most recent call last):"]
        for frame in self.frames:
            if frame.cell == "prelude":
                where = f"prelude, line {frame.cell_line}"
            elif frame.cell is not None:
                where = f"cell {frame.cell}, line {frame.cell_line}"
            else:
                where = f"line {frame.line}"
            lines.append(f"  {where}, in {frame.function}")
            if frame.text:
                lines.append(f"    {frame.text}")
        lines.append(f"{self.exc_type}: {self.message}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "exc_type": self.exc_type,
            "message": self.message,
            "phase": self.phase,
            "frames": [asdict(f) for f in self.frames],
            "cell": self.cell,
            "line": self.line,
            "traceback": self.format_traceback(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, stdout: str = "", stderr: str = "") -> StepFailed:
        return cls(
            data["step"],
            data["exc_type"],
            data["message"],
            phase=data.get("phase", "code"),
            frames=[Frame(**f) for f in data.get("frames", [])],
            cell=data.get("cell"),
            line=data.get("line"),
            stdout=stdout,
            stderr=stderr,
        )

    def __reduce__(self):  # keyword arguments do not survive Exception's default pickling
        return (_rebuild_step_failed, (self.to_dict(), self.stdout, self.stderr))


def _rebuild_step_failed(data: dict[str, Any], stdout: str, stderr: str) -> StepFailed:
    return StepFailed.from_dict(data, stdout=stdout, stderr=stderr)


def code_filename(step: str, part: str = "code") -> str:
    """The pseudo file name user code is compiled under: readable in any traceback."""
    return f"<step:{step}>" if part == "code" else f"<step:{step}:{part}>"


def _map_line(line: int, source: StepSource | None) -> tuple[int | None, int | None]:
    """A line of `Step.code` -> (notebook cell, line within that cell)."""
    if source is None or not source.first_lines:
        return None, None
    index = None
    for i, first in enumerate(source.first_lines):
        if first <= line:
            index = i
    if index is None:
        return None, None
    offset = line - source.first_lines[index]  # 0-based line within the cell's code
    if index < len(source.cell_lines) and 0 <= offset < len(source.cell_lines[index]):
        return source.cells[index], source.cell_lines[index][offset]
    return source.cells[index], offset + 1


def _user_frames(step: str, tb: types.TracebackType | None, source: StepSource | None) -> list[Frame]:
    code_file, prelude_file = code_filename(step), code_filename(step, "prelude")
    frames = []
    for summary in traceback.extract_tb(tb):
        if summary.filename == code_file:
            cell, cell_line = _map_line(summary.lineno or 0, source)
        elif summary.filename == prelude_file:
            cell, cell_line = "prelude", summary.lineno
        else:
            continue
        frames.append(Frame(summary.name, summary.lineno or 0, cell, cell_line, (summary.line or "").strip()))
    return frames


def failure_from(step: Step, exc: BaseException, phase: str, source: StepSource | None) -> StepFailed:
    frames = _user_frames(step.name, exc.__traceback__, source)
    cell: int | str | None = None
    line: int | None = None
    if isinstance(exc, SyntaxError) and exc.filename in (code_filename(step.name), code_filename(step.name, "prelude")):
        # A syntax error has no frame: its position is on the exception itself.
        if exc.filename == code_filename(step.name):
            cell, line = _map_line(exc.lineno or 0, source)
        else:
            cell, line = "prelude", exc.lineno
        text = (exc.text or "").strip()
        frames = [Frame("<module>", exc.lineno or 0, cell, line, text)]
        message = exc.msg
    else:
        message = str(exc)
        if frames:
            cell, line = frames[-1].cell, frames[-1].cell_line
    if cell is None and phase == "foreach" and source is not None and source.cells:
        cell = source.cells[0]  # the foreach tag sits on the step's first cell
    if isinstance(exc, SystemExit):
        message = f"the step called exit({exc.code!r}); a step ends by reaching its last line"
    redact = sys.modules.get("cellar.data.redact")  # loaded once the step has read a secret
    if redact is not None:
        message = redact.scrub(message)  # "could not connect with password s3cret" keeps it out of the run page
    return StepFailed(step.name, type(exc).__name__, message, phase=phase, frames=frames, cell=cell, line=line)
