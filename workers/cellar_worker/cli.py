"""`cellar-worker --pool cpu`: run the pool agent for one pool."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # `cellar-worker serve`: the model server (serve/main.py).
        from cellar_worker.serve.main import main as serve

        serve(argv[1:])
        return
    if argv[:1] == ["supervise"]:
        # `cellar-worker supervise`: scale every pool's agents on demand (supervisor.py).
        from cellar_worker.supervisor import main as supervise

        supervise(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="cellar-worker", description="Run a Cellar pool agent.")
    parser.add_argument("--pool", default=os.environ.get("CELLAR_POOL", "cpu"), help="pool name (queue pool.<name>)")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("CELLAR_WORKER_CONCURRENCY", "1")))
    parser.add_argument("--loglevel", default=os.environ.get("CELLAR_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--api-url", default=None, help="the engine API when a batch names none (default: $CELLAR_API_URL)"
    )
    parser.add_argument(
        "--visibility-timeout",
        type=float,
        default=None,
        help="seconds before Redis redelivers an unacknowledged message (default: "
        "$CELLAR_BROKER_VISIBILITY_TIMEOUT or 3600; keep it above the engine's claim grace)",
    )
    parser.add_argument(
        "--gpus",
        default=None,
        help="GPU pools: device indexes (0,1: one executor each), `auto` (nvidia-smi) or `fallback` "
        "(run on the CPU); default $CELLAR_WORKER_GPUS, empty for a CPU pool",
    )
    args = parser.parse_args(argv)
    if args.gpus is not None:
        os.environ["CELLAR_WORKER_GPUS"] = args.gpus
    os.environ["CELLAR_WORKER_CONCURRENCY"] = str(args.concurrency)

    # The pool name must be known before the app module configures its default queue.
    os.environ["CELLAR_POOL"] = args.pool
    # The agent must never hold database credentials (ARCHITECTURE.md, "Trust boundary").
    os.environ.pop("DATABASE_URL", None)
    if args.api_url:
        os.environ["CELLAR_API_URL"] = args.api_url
    if args.visibility_timeout is not None:
        os.environ["CELLAR_BROKER_VISIBILITY_TIMEOUT"] = str(args.visibility_timeout)
    from cellar_worker.app import app, broker_url, pool_queue

    app.conf.broker_url = broker_url()
    app.worker_main(
        [
            "worker",
            "--queues",
            pool_queue(args.pool),
            "--hostname",
            f"{args.pool}@%h",
            # Threads: a batch only waits on its executor process and on HTTP, and one process
            # lets every batch of a team reuse that team's warm executors.
            "--pool",
            "threads",
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
