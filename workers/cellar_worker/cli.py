"""`cellar-worker --pool cpu`: run the pool agent for one pool."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cellar-worker", description="Run a Cellar pool agent.")
    parser.add_argument("--pool", default=os.environ.get("CELLAR_POOL", "cpu"), help="pool name (queue pool.<name>)")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("CELLAR_WORKER_CONCURRENCY", "1")))
    parser.add_argument("--loglevel", default=os.environ.get("CELLAR_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)

    # The pool name must be known before the app module configures its default queue.
    os.environ["CELLAR_POOL"] = args.pool
    # The agent must never hold database credentials (ARCHITECTURE.md, "Trust boundary").
    os.environ.pop("DATABASE_URL", None)
    from cellar_worker.app import app, broker_url, pool_queue

    app.conf.broker_url = broker_url()
    app.worker_main(
        [
            "worker",
            "--queues",
            pool_queue(args.pool),
            "--hostname",
            f"{args.pool}@%h",
            "--concurrency",
            str(args.concurrency),
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
