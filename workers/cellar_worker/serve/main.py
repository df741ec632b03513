"""`cellar-worker serve`: run the model server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cellar-worker serve", description="Run Cellar's model server.")
    default_port = int(os.environ.get("CELLAR_SERVE_PORT") or int(os.environ.get("CELLAR_PORT", "8000")) + 3)
    parser.add_argument("--host", default=os.environ.get("CELLAR_BIND", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("CELLAR_SERVE_WORKERS", "1")),
        help="processes (each loads every routed model and polls the control plane)",
    )
    parser.add_argument("--api-url", default=None, help="the control plane (default $CELLAR_API_URL)")
    parser.add_argument("--loglevel", default=os.environ.get("CELLAR_LOG_LEVEL", "INFO"))
    args = parser.parse_args(list(argv) if argv is not None else None)
    # Serve runs user code: it never holds database or broker credentials (ARCHITECTURE.md).
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    if args.api_url:
        os.environ["CELLAR_API_URL"] = args.api_url
    if not os.environ.get("CELLAR_SERVE_TOKEN"):
        raise SystemExit("Set CELLAR_SERVE_TOKEN (`python manage.py cellar_serve_token` prints it).")
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    uvicorn.run(
        "cellar_worker.serve.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=args.loglevel.lower(),
    )


if __name__ == "__main__":
    main()
