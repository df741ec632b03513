"""A/B tests: outcome ingestion, assignment + exposure overhead in serve, analysis time.

    .venv/bin/python benchmarks/bench_abtests.py [--quick] [--events N] [--exposures N]

Uses its own PostgreSQL database (cellar_abbench, dropped at the end) and the Procfile's web
process (gunicorn, 1 worker x 8 threads). Three measurements:

1. Events ingestion: 8 concurrent senders POST batches of 1,000 events (unique ids, plus 5%
   resent ids) to /api/v1/teams/<team>/ab-tests/<id>/events; events/s end to end and a count
   check (stored == unique ids). Peer, same machine, same database: the naive write path, one
   idempotent ORM insert per event (`get_or_create` on the event id), 8 threads.
2. Assignment + exposure in serve: `cellar_worker.serve.abtest.assign` per row (hash v2,
   range lookup, first-exposure set, outbox append), p50/p99 in microseconds, against the
   0.5 ms target; beside it the route choice serve makes for a deployment without a test.
3. Analysis: a test with N exposures (default 1,000,000) and 3 metrics (proportion, mean with
   CUPED, ratio) generated in SQL; the SQL aggregation into per-arm sufficient statistics, then
   the analysis from the stored aggregates (target < 2 s).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO / "benchmarks"), str(REPO / "workers"), str(REPO / "sdk")]
DB = "cellar_abbench"
BASE = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def _psql(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{BASE}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def setup_django() -> None:
    os.environ["DATABASE_URL"] = f"{BASE}/{DB}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cellar_server.settings")
    import django

    django.setup()


def make_test():
    from django.contrib.auth import get_user_model

    from cellar_server.abtests.models import ABTest, Arm, Metric, Phase
    from cellar_server.teams import services
    from cellar_server.teams.actors import Actor
    from cellar_server.teams.models import Membership, Team

    user = get_user_model().objects.create_user("bench", password="x")
    team = Team.objects.create(slug="bench", name="Bench")
    Membership.all_teams.create(team=team, user=user, role="owner")
    _, raw = services.api_token_create(actor=Actor(user=user), team=team, name="bench", scopes=None, expires_in_days=1)
    test = ABTest.all_teams.create(team=team, name="bench", deployment_id=0, deployment_name="bench", seed="bench",
                                   status=ABTest.RUNNING)  # fmt: skip
    Arm.all_teams.bulk_create([Arm(team=team, test=test, position=i, key=k, version_id=str(i + 1), weight=0.5)
                               for i, k in enumerate(("control", "b"))])  # fmt: skip
    Phase.all_teams.create(team=team, test=test, number=1, weights=[0.5, 0.5], coverage=1)
    Metric.all_teams.bulk_create([
        Metric(team=team, test=test, name="converted", kind="proportion", role="primary", position=0),
        Metric(team=team, test=test, name="revenue", kind="mean", role="secondary", position=1, cuped=True),
        Metric(team=team, test=test, name="clicks", kind="ratio", role="guardrail", denominator="views", position=2,
               cuped=False),
    ])  # fmt: skip
    return team, test, raw


def bench_ingestion(url: str, team, test, token: str, total: int) -> dict:
    import requests

    from cellar_server.abtests.models import Event

    senders, batch = 8, 1000
    per_sender = total // senders // batch
    ids_sent: list[set] = [set() for _ in range(senders)]

    def send(k: int) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        last: list = []
        for b in range(per_sender):
            events = [{"id": f"{k}-{b}-{i}", "unit_id": f"u{random.randrange(100000)}", "name": "converted",
                       "value": 1, "at": time.time()} for i in range(batch)]  # fmt: skip
            resend = last[: batch // 20]  # 5% duplicates from the previous batch
            body = {"events": events + resend}
            r = s.post(f"{url}/api/v1/teams/{team.slug}/ab-tests/{test.pk}/events", json=body, timeout=60)
            r.raise_for_status()
            ids_sent[k].update(e["id"] for e in events)
            last = events

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    unique = sum(len(s) for s in ids_sent)
    stored = Event.all_teams.filter(test=test).count()
    return {"events": unique, "seconds": elapsed, "rate": unique / elapsed, "stored": stored, "lost": unique - stored}


def bench_naive(team, test, total: int) -> dict:
    from django.db import connection

    from cellar_server.abtests.models import Event

    senders = 8
    per = total // senders

    def work(k: int) -> None:
        try:
            for i in range(per):
                Event.all_teams.get_or_create(
                    test=test, event_id=f"naive-{k}-{i}",
                    defaults={"team": team, "unit_id": f"u{i}", "name": "converted", "value": 1.0,
                              "at": __import__("django.utils.timezone").utils.timezone.now()},
                )  # fmt: skip
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(senders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"events": per * senders, "seconds": elapsed, "rate": per * senders / elapsed}


def bench_assignment(n: int) -> dict:
    from cellar_worker.serve import abtest

    block = {"test_id": 1, "seed": "bench-seed", "hash_version": 2, "phase": 1, "coverage": 1.0, "shadow": False,
             "control_version_id": "1", "variants": [{"key": "control", "version_id": "1", "weight": 0.5},
                                                     {"key": "b", "version_id": "2", "weight": 0.5}]}  # fmt: skip
    units = [uuid.uuid4().hex for _ in range(n)]
    first, repeat = [], []
    for u in units:  # a unit's first row: assignment + exposure recorded
        t = time.perf_counter_ns()
        abtest.assign(block, u)
        first.append(time.perf_counter_ns() - t)
    for u in units:  # later rows of the same unit: assignment only
        t = time.perf_counter_ns()
        abtest.assign(block, u)
        repeat.append(time.perf_counter_ns() - t)
    weights = [0.5, 0.5]
    choose = []
    for _ in range(n):  # the weighted route choice of a deployment without a test
        t = time.perf_counter_ns()
        random.choices((0, 1), weights)
        choose.append(time.perf_counter_ns() - t)
    abtest._pending.clear()

    def q(xs, p):
        xs = sorted(xs)
        return xs[int(p * (len(xs) - 1))] / 1000

    return {"first_p50": q(first, 0.5), "first_p99": q(first, 0.99), "repeat_p50": q(repeat, 0.5),
            "repeat_p99": q(repeat, 0.99), "route_p50": q(choose, 0.5)}  # fmt: skip


def bench_analysis(test, exposures: int) -> dict:
    from django.db import connection

    from cellar_server.abtests import aggregates, analysis
    from cellar_server.abtests.models import ABTest

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM abtests_event WHERE test_id = %s", [test.pk])
        cur.execute(
            """INSERT INTO abtests_exposure (team_id, test_id, phase, unit_id, arm, first_at)
               SELECT %s, %s, 1, 'u' || g, mod(g, 2), now() - interval '2 days' + mod(g, 1440) * interval '1 minute'
               FROM generate_series(1, %s) g""",
            [test.team_id, test.pk, exposures],
        )
        events = [
            ("converted", "random() < 0.10 + 0.01 * mod(g, 2)", "1", "60"),
            ("revenue", "random() < 0.6", "exp(random() * 3)", "120"),
            ("revenue", "random() < 0.3", "exp(random() * 3)", "-7200"),  # pre-period (CUPED)
            ("views", "TRUE", "1 + floor(random() * 4)", "30"),
            ("clicks", "random() < 0.3", "1", "40"),
        ]
        for i, (name, cond, value, seconds) in enumerate(events):
            cur.execute(
                f"""INSERT INTO abtests_event (team_id, test_id, event_id, unit_id, name, value, at)
                    SELECT %s, %s, %s || g, 'u' || g, %s, {value},
                           now() - interval '2 days' + mod(g, 1440) * interval '1 minute' + %s * interval '1 second'
                    FROM generate_series(1, %s) g WHERE {cond}""",
                [test.team_id, test.pk, f"gen{i}-", name, int(seconds), exposures],
            )
        cur.execute("ANALYZE abtests_event; ANALYZE abtests_exposure")
        cur.execute("SELECT count(*) FROM abtests_event WHERE test_id = %s", [test.pk])
        n_events = cur.fetchone()[0]
    generated = time.perf_counter() - t0
    test = ABTest.all_teams.get(pk=test.pk)
    t0 = time.perf_counter()
    rows = aggregates.aggregates_refresh(test=test)
    aggregate_s = time.perf_counter() - t0
    test.refresh_from_db()
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        result = analysis.analyse(test=test)
        runs.append(time.perf_counter() - t0)
    return {"exposures": exposures, "events": n_events, "generate_s": generated, "aggregate_s": aggregate_s,
            "aggregate_rows": rows, "analysis_s": statistics.median(runs),
            "units": [a["units"] for a in result["arms"]], "decision": result["decision"]["state"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--naive-events", type=int, default=16_000)
    parser.add_argument("--exposures", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.quick:
        args.events, args.naive_events, args.exposures = 40_000, 4_000, 100_000
    _psql(f"DROP DATABASE IF EXISTS {DB}")
    _psql(f"CREATE DATABASE {DB}")
    env = {**os.environ, "DATABASE_URL": f"{BASE}/{DB}", "DJANGO_SETTINGS_MODULE": "cellar_server.settings"}
    web = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
        setup_django()
        team, test, token = make_test()
        from tracking.servers import free_port, wait_http

        port = free_port()
        log = Path(f"/tmp/abbench-web-{port}.log")
        web = subprocess.Popen(
            [str(REPO / ".venv/bin/gunicorn"), "cellar_server.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--threads", "8", "--worker-class", "gthread", "--log-level", "warning"],
            cwd=REPO, env={**env, "PYTHONPATH": str(REPO / "platform")}, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", web, log, timeout=120)
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        ing = bench_ingestion(url, team, test, token, args.events)
        naive = bench_naive(team, test, args.naive_events)
        print("\n1. events ingestion, 8 senders x batches of 1,000 (+5% resent ids), gunicorn 1x8 threads, PostgreSQL")
        print(f"   Cellar batch endpoint : {ing['rate']:>9,.0f} events/s  ({ing['events']:,} events in "
              f"{ing['seconds']:.1f} s; stored {ing['stored']:,}, lost {ing['lost']})")  # fmt: skip
        print(
            f"   naive per-event insert: {naive['rate']:>9,.0f} events/s  "
            f"({naive['events']:,} events, ORM get_or_create)"
        )
        print(f"   ratio                 : {ing['rate'] / naive['rate']:.1f}x   target >= 10,000 events/s: "
              f"{'met' if ing['rate'] >= 10000 else 'NOT met'}")  # fmt: skip
        a = bench_assignment(200_000 if not args.quick else 50_000)
        print("\n2. assignment + exposure in serve, per row (microseconds)")
        print(f"   first row of a unit (assign + exposure): p50 {a['first_p50']:.1f}  p99 {a['first_p99']:.1f}")
        print(f"   later rows (assign only)               : p50 {a['repeat_p50']:.1f}  p99 {a['repeat_p99']:.1f}")
        print(f"   weighted route choice without a test   : p50 {a['route_p50']:.1f}")
        print(f"   target < 500 us p50: {'met' if a['first_p50'] < 500 else 'NOT met'} "
              f"({500 / a['first_p50']:.0f}x under)")  # fmt: skip
        an = bench_analysis(test, args.exposures)
        print(f"\n3. analysis: {an['exposures']:,} exposures, {an['events']:,} events, 3 metrics")
        print(f"   SQL aggregation into per-arm sufficient statistics: {an['aggregate_s']:.2f} s "
              f"({an['aggregate_rows']} aggregate rows)")  # fmt: skip
        print(f"   analysis from stored aggregates (median of 5)     : {an['analysis_s'] * 1000:.0f} ms  "
              f"target < 2 s: {'met' if an['analysis_s'] < 2 else 'NOT met'}; units per arm {an['units']}, "
              f"decision {an['decision']}")  # fmt: skip
    finally:
        if web is not None:
            os.killpg(web.pid, 15)
            web.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        _psql(f"DROP DATABASE IF EXISTS {DB}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
