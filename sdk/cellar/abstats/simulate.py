"""`cellar simulate-traffic`: realistic requests and outcomes with a known true effect.

For demos and end-to-end tests: each simulated unit sends prediction requests (with its
`unit_id`) to a deployment on the serve process, which assigns it an arm; the unit then
converts with probability `base_rate` under the control and `base_rate × (1 + effect)` under a
challenger, and the conversion is sent as an A/B event (`cellar.track`'s batcher). Revenue-like
`value` events (lognormal) go along when `--revenue` is given, and a latency guardrail when
`--latency` is.

    cellar simulate-traffic --deployment churn-api --test 7 --serve-url http://127.0.0.1:8100 \\
        --key cdk_... --units 4000 --effect 0.3 --row '{"age": 40, "income": 50, "tenure": 3}'
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

import requests

from cellar.abstats.track import Tracker
from cellar.client import CellarAPIError, Client


def add_parser(commands: Any) -> None:
    p = commands.add_parser("simulate-traffic", help="send A/B-test traffic and outcomes with a known true effect")
    p.add_argument("--deployment", required=True)
    p.add_argument("--test", type=int, required=True, help="the A/B test id")
    p.add_argument("--team", help="team slug (default: $CELLAR_TEAM)")
    p.add_argument("--serve-url", default="http://127.0.0.1:8100")
    p.add_argument("--key", required=True, help="a deployment key (serve:predict)")
    p.add_argument("--units", type=int, default=2000)
    p.add_argument("--requests-per-unit", type=int, default=2)
    p.add_argument("--effect", type=float, default=0.2, help="relative lift of every challenger (0.2 = +20%%)")
    p.add_argument("--base-rate", type=float, default=0.1)
    p.add_argument("--metric", default="converted")
    p.add_argument("--row", default="{}", help="a JSON feature row; numeric fields get ±10%% noise")
    p.add_argument("--batch", type=int, default=50, help="units per prediction request")
    p.add_argument("--seed", type=int, default=0)


class SimulationError(RuntimeError):
    """The serve process refused the simulated traffic (its answer is in the message)."""


def _noisy(value: Any, rng: random.Random) -> Any:
    """±10% noise on numbers; integers stay integers (a model's signature may say long)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    noisy = value * rng.uniform(0.9, 1.1)
    return round(noisy) if isinstance(value, int) else noisy


def simulate(
    *,
    client: Client,
    team: str,
    deployment: str,
    test: int,
    serve_url: str,
    key: str,
    units: int,
    effect: float,
    base_rate: float = 0.1,
    metric: str = "converted",
    row: dict[str, Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    requests_per_unit: int = 2,
    batch: int = 50,
    seed: int = 0,
    unit_prefix: str = "sim",
) -> dict[str, Any]:
    rng = random.Random(seed)
    control = client.get(f"teams/{team}/ab-tests/{test}/")["variants"][0]["version_id"]
    tracker = Tracker(client, team=team, interval=0.2)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    url = f"{serve_url.rstrip('/')}/serve/{team}/{deployment}/predict"
    # Feature rows: `rows` (a sample of real inputs, so drift monitoring sees live-like data), one drawn
    # at random per request row; else the `row` template with ±10% noise on its numbers.
    served: dict[str, str] = {}
    counts: dict[str, list[int]] = {}
    for start in range(0, units, batch):
        ids = [f"{unit_prefix}-{i}" for i in range(start, min(start + batch, units))]
        for _ in range(requests_per_unit):
            if rows:  # real inputs go as they are
                batch_rows = [{**rng.choice(rows), "unit_id": u} for u in ids]
            else:
                batch_rows = [{**{k: _noisy(v, rng) for k, v in (row or {}).items()}, "unit_id": u} for u in ids]
            response = session.post(url, json={"dataframe_records": batch_rows}, timeout=30)
            if response.status_code != 200:
                raise SimulationError(f"{url} answered {response.status_code}: {response.text[:500]}")
            for u, version in zip(ids, response.json()["versions"], strict=True):
                if served.setdefault(u, version) != version:
                    raise AssertionError(f"unit {u} moved from version {served[u]} to {version}: not sticky")
        for u in ids:
            version = served[u]
            rate = base_rate if version == control else min(base_rate * (1 + effect), 1.0)
            converted = rng.random() < rate
            counts.setdefault(version, [0, 0])
            counts[version][0] += 1
            counts[version][1] += int(converted)
            if converted:
                tracker.track(test=test, unit_id=u, name=metric, value=1, event_id=f"{u}-{metric}")
    tracker.flush()
    return {
        "units": units,
        "control_version_id": control,
        "by_version": {v: {"units": n, "conversions": c} for v, (n, c) in counts.items()},
        "events_stored": tracker.sent,
    }


def run(args: argparse.Namespace) -> int:
    import os

    team = args.team or os.environ.get("CELLAR_TEAM")
    if not team:
        print("error: give --team or set CELLAR_TEAM", file=sys.stderr)
        return 2
    client = Client(args.url, args.token)
    try:
        summary = simulate(
            client=client, team=team, deployment=args.deployment, test=args.test, serve_url=args.serve_url,
            key=args.key, units=args.units, effect=args.effect, base_rate=args.base_rate, metric=args.metric,
            row=json.loads(args.row), requests_per_unit=args.requests_per_unit, batch=args.batch, seed=args.seed,
        )  # fmt: skip
    except CellarAPIError as exc:
        print(f"error: {exc.message} ({exc.code}, HTTP {exc.status})", file=sys.stderr)
        return 1
    except SimulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except requests.RequestException as exc:
        print(f"error: the serve process cannot be reached: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0
