"""The raw-Celery peer: one no-op task, acks_late, no result backend (shared/notes/celery.md §1).

    BENCH_BROKER_URL=redis+socket://… BENCH_COUNTER=/path celery -A noop_app worker -P prefork -c 2 …

Each task appends one byte to the counter file, so the driver knows when all N have run
without a result backend (which the notes show costs 30-40 % more CPU). Celery's defaults
otherwise (prefetch multiplier 4, as in the notes' measurement).
"""

from __future__ import annotations

import os

from celery import Celery

QUEUE = "bench.noop"

app = Celery("bench_noop", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop", acks_late=True, ignore_result=True)
def noop() -> None:
    fd = os.open(os.environ["BENCH_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)
