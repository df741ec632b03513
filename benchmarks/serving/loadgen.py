"""A small closed-loop HTTP/1.1 load generator (asyncio + uvloop, keep-alive connections).

    python loadgen.py URL BODY_FILE --connections 8 --seconds 5 [--header 'Name: value']

Each connection sends one POST, reads the whole response (Content-Length), records the latency
and sends the next. Prints JSON: requests, errors, seconds, rps, p50_ms, p99_ms. It runs in its
own process so that it never shares an interpreter with the server it measures, and it is the
same program for every side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlparse


async def _connection(host, port, request: bytes, deadline: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def run(url: str, body: bytes, headers: list[str], connections: int, seconds: float, warmup: float) -> dict:
    parsed = urlparse(url)
    extra = "".join(f"{h}\r\n" for h in headers)
    request = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body
    if warmup:
        await asyncio.gather(
            *(
                _connection(parsed.hostname, parsed.port, request, time.perf_counter() + warmup, [], [])
                for _ in range(2)
            )
        )
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_connection(parsed.hostname, parsed.port, request, deadline, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body_file")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    result = asyncio.run(run(args.url, body, args.header, args.connections, args.seconds, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
