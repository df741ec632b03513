"""The demo's "warehouse": scikit-learn's handwritten digits as a table of scanned form boxes.

scikit-learn ships the 1,797 8x8 scans (`load_digits`), so nothing is downloaded. They go into
an SQLite file with what a real scanning pipeline adds: a form id and a scan time per row, a
few forms scanned twice and a few blank boxes, which the notebook's `clean` step removes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

TABLE = "scanned_digits"


def write_warehouse(path: Path, *, seed: int = 7) -> int:
    """(Re)create the table; returns its row count. The same seed writes the same rows."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pixels = digits.data.astype(int)
    labels = digits.target.astype(int)
    twice = rng.choice(len(pixels), size=40, replace=False)  # forms scanned twice
    pixels = np.vstack([pixels, pixels[twice], np.zeros((12, 64), dtype=int)])  # and 12 blank boxes
    labels = np.concatenate([labels, labels[twice], rng.integers(0, 10, size=12)])
    columns = ", ".join(f"p{i} INTEGER" for i in range(64))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(f"DROP TABLE IF EXISTS {TABLE}")
        db.execute(f"CREATE TABLE {TABLE} (form_id INTEGER, scanned_at TEXT, {columns}, label INTEGER)")
        rows = [
            (1000 + i, f"2026-11-{1 + i % 28:02d}T09:{i % 60:02d}:00Z", *map(int, px), int(label))
            for i, (px, label) in enumerate(zip(pixels, labels, strict=True))
        ]
        db.executemany(f"INSERT INTO {TABLE} VALUES ({', '.join('?' * 67)})", rows)
    return len(rows)


def sample_rows(path: Path, count: int, *, seed: int = 11) -> list[dict[str, int]]:
    """`count` scans from the warehouse as the serve process receives them (the 64 pixel columns)."""
    import random

    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT {', '.join(f'p{i}' for i in range(64))} FROM {TABLE}").fetchall()
    picked = random.Random(seed).sample(rows, min(count, len(rows)))
    return [{f"p{i}": value for i, value in enumerate(row)} for row in picked]
