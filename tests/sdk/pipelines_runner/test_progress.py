"""The progress display: plain lines in logs, one redrawn line on a terminal."""

from __future__ import annotations

import io

from cellar.pipelines.progress import ProgressBar, ProgressState, format_elapsed


def test_plain_output_is_one_line_per_ended_task():
    out = io.StringIO()
    bar = ProgressBar(out, tty=False)
    bar(ProgressState(done=0, total=3, running=["load"], elapsed=0.5))
    bar(ProgressState(done=1, total=3, running=["train[0]"], elapsed=2.0, ended=[("load", "succeeded", 1.25)]))
    bar(
        ProgressState(
            done=3,
            total=3,
            running=[],
            elapsed=65.0,
            ended=[("train[0]", "failed", 3.0), ("pick", "upstream_failed", None)],
            finished=True,
        )
    )
    assert out.getvalue().splitlines() == [
        "[00:02] load succeeded in 1.2s (1/3)",
        "[01:05] train[0] failed in 3.0s (3/3)",
        "[01:05] pick upstream_failed (3/3)",
        "[01:05] 3/3 tasks finished",
    ]
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_a_bar_redrawn_in_place():
    out = io.StringIO()
    bar = ProgressBar(out, tty=True, interval=0)
    bar(ProgressState(done=1, total=4, running=["train[0]", "train[1]"], elapsed=3.0))
    bar(ProgressState(done=2, total=4, running=["train[1]"], elapsed=4.0, ended=[("train[0]", "succeeded", 1.0)]))
    bar(
        ProgressState(
            done=4, total=4, running=[], elapsed=5.0, failed=1, ended=[("train[1]", "failed", 2.0)], finished=True
        )
    )
    text = out.getvalue()
    assert text.startswith("[#####---------------] 1/4 00:03 running: train[0], train[1]")
    assert "\r\x1b[2K  ✓ train[0] succeeded 1.0s\n" in text  # ended tasks print above the bar
    assert "  ✗ train[1] failed 2.0s\n" in text
    assert text.endswith("[####################] 4/4 1 failed 00:05\n")


def test_elapsed_format():
    assert [format_elapsed(s) for s in (0, 59.9, 61, 3725)] == ["00:00", "00:59", "01:01", "1:02:05"]
