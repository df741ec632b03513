"""Cellar's side: the real processes of the Procfile, a promoted notebook, runs timed end to end.

Processes (as `make up` runs them, on a private database and the bench's private Redis):

* web: `gunicorn cellar_server.wsgi --workers 1 --threads 8 --worker-class gthread …` (the Procfile);
* control: `celery -A cellar_server worker --beat --queues control --concurrency 1 …` (the Procfile);
* pool agent: `cellar-worker --pool cpu --concurrency W` (W = the raw Celery worker's process count;
  each of its W threads runs its batch in a warm executor process, so W processes run user code).

The benchmark team's quota (Team.max_concurrent_cpu_tasks, default 64) is raised through the
quota service before the runs, so the quota is not what is measured; the dispatcher's pool
window (CELLAR_ENGINE_POOL_WORKERS = W, window factor 2, batches of at most 200) is left as
shipped. Runs are started with `use_cache: false` (the 1,000-element run's elements are the first
1,000 of the 20,000-element one: a cached run would measure the cache, not the engine).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import nbformat
import requests
from tracking.servers import Cleanup, create_pg_database, free_port

from engine import procs

TEAM, USER, PASSWORD = "bench", "bench", "bench-pass-1"
PIPELINE = "engine-bench"
QUOTA = 1_000_000
DB_SCRIPT = Path(__file__).resolve().parent / "cellar_db.py"


def notebook() -> dict:
    """parameters n -> make (items = range(n)) -> work (foreach: x = 2 * item) -> join (total) -> end
    (checks the total): the Metaflow flow's shape, plus the expand task that evaluates `items`."""

    def cell(source: str, *tags: str):
        return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})

    node = nbformat.v4.new_notebook(
        cells=[
            cell("n = 200", "parameters"),
            cell("items = list(range(n))", "step:make"),
            cell("x = 2 * item", "step:work", "foreach:items"),
            cell("total = sum(x)\ncount = len(x)", "step:join", "join"),
            # Reads the join's outputs, so they are recorded (a step's outputs are what later steps read).
            cell("assert count == n and total == n * (n - 1), (count, total)", "step:end"),
        ]
    )
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.loads(nbformat.writes(node))


class CellarStack:
    def __init__(self, cleanup: Cleanup, home: Path, redis_url: str, workers: int, engine: str):
        self.cleanup = cleanup
        self.home = home
        self.workers = workers
        self.engine = engine
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (home / "cellar").mkdir(exist_ok=True)
        # PostgreSQL's backends serving the bench database work for Cellar: their CPU is counted.
        self.db_processes: dict[str, str] = {}
        if engine == "sqlite":
            database_url = f"sqlite:///{home / 'cellar.sqlite3'}"
        else:
            name = f"cellar_engine_bench_{os.getpid()}"
            database_url = "postgres://" + create_pg_database(cleanup, name)
            self.db_processes = {"postgres": f" {name} "}
        base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("CELLAR_")}
        base.pop("DATABASE_URL", None)
        base.pop("REDIS_URL", None)
        base.pop("ARTIFACT_STORE_URL", None)
        self.store_dir = home / "artifacts"
        self.env = {
            **base,
            "PATH": f"{procs.BIN}:{base.get('PATH', '')}",
            "CELLAR_HOME": str(home / "cellar"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ARTIFACT_STORE_URL": f"file://{self.store_dir}",
            "CELLAR_API_URL": self.url,
            "CELLAR_SECRET_KEY": secrets.token_hex(32),
            "CELLAR_WORKER_CONCURRENCY": str(workers),
            "CELLAR_ENGINE_POOL_WORKERS": str(workers),
            "DJANGO_SETTINGS_MODULE": "cellar_server.settings",
        }
        if os.environ.get("ENGINE_BENCH_PYTHONPATH"):
            # A patched copy of cellar_server / cellar_worker / cellar ahead of the installed one:
            # how a change to the engine is measured before it is committed (docs/benchmarks.md).
            self.env["PYTHONPATH"] = os.environ["ENGINE_BENCH_PYTHONPATH"]
        self.token = ""
        self.version = ""
        self.web = self.control = self.agent = None
        self.extra_trees: dict[str, int] = {}  # counted with the stack's CPU (the Redis server)

    # --- set-up ----------------------------------------------------------------------------------

    def _manage(self, *args: str) -> str:
        done = subprocess.run(
            [str(procs.BIN / "python"), *args], env=self.env, cwd=procs.REPO, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def prepare(self) -> None:
        token_file = self.home / "token"
        self._manage("manage.py", "migrate", "--noinput", "-v", "0")
        self._manage(
            "manage.py", "cellar_bootstrap", "--team", TEAM, "--user", USER, "--password", PASSWORD,
            "--token-out", str(token_file),
        )  # fmt: skip
        self.token = token_file.read_text().strip()
        self._manage(str(DB_SCRIPT), "quota", TEAM, str(QUOTA))

    def start(self) -> dict[str, float]:
        self.web, self.control, started = procs.start_web_and_control(
            self.cleanup, self.env, self.home, self.port, self.url
        )
        t = time.monotonic()
        agent_env = {k: v for k, v in self.env.items() if k not in ("DATABASE_URL", "CELLAR_SECRET_KEY")}
        self.agent = procs.spawn(
            self.cleanup, "pool agent", [str(procs.BIN / "cellar-worker"), "--pool", "cpu"],
            agent_env, procs.REPO, self.home / "agent.log",
        )  # fmt: skip
        procs.wait_for_log("pool agent", self.agent, self.home / "agent.log", r"cpu@\S+ ready")
        started["agent"] = time.monotonic() - t
        return started

    def trees(self) -> dict[str, int]:
        return {"web": self.web.pid, "control": self.control.pid, "agent": self.agent.pid}

    def promote(self) -> str:
        """`cellar promote` (the SDK's compiler, then the versions API): the version id."""
        path = self.home / "engine_bench.ipynb"
        path.write_text(json.dumps(notebook()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLAR_") and k != "PYTHONPATH"}
        env.update(CELLAR_URL=self.url, CELLAR_TOKEN=self.token)
        done = subprocess.run(
            [str(procs.BIN / "cellar"), "promote", str(path), "--pipeline", PIPELINE],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"cellar promote failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        self.version = done.stdout.strip().splitlines()[-1]
        return self.version

    # --- a run ------------------------------------------------------------------------------------

    def _api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    @staticmethod
    def _get(api: requests.Session, url: str) -> dict:
        # gunicorn closes an idle keep-alive connection after 2 s, the poll interval: a request
        # sent as it closes is reset, and is simply sent again (as `cellar promote --wait` does).
        for attempt in range(5):
            try:
                return api.get(url, timeout=60).json()
            except requests.ConnectionError:
                if attempt == 4:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def run(self, n: int, *, timeout: float, poll: float = 2.0) -> dict:
        """Start a run of N elements and follow it to its end, polling GET runs/<id>/ every `poll`
        seconds as `cellar promote --run --wait` does. Timed from just before the POST to the run's
        `ended_at` as the server recorded it (the client sees it at most `poll` later)."""
        api = self._api()
        base = f"{self.url}/api/v1/teams/{TEAM}/pipelines/{PIPELINE}/runs/"
        load_before = procs.load()
        # The agent's executors apart from it: user code runs there, the agent only waits and posts.
        meter = procs.CpuMeter(self.trees_with_redis, split={"agent": "executors"}, matching=self.db_processes).start()
        submitted = time.time()
        started = time.perf_counter()
        answer = api.post(base, json={"version": self.version, "parameters": {"n": n}, "use_cache": False}, timeout=120)
        post_s = time.perf_counter() - started
        if answer.status_code != 201:
            raise RuntimeError(f"POST runs/ answered {answer.status_code}: {answer.text[:2000]}")
        number = answer.json()["id"]
        deadline = time.monotonic() + timeout
        body = answer.json()
        while body["state"] not in ("succeeded", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {number} not done within {timeout:.0f}s: {body.get('progress')}")
            for name, proc in (("web", self.web), ("control", self.control), ("agent", self.agent)):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.home}")
            time.sleep(poll)
            body = self._get(api, f"{base}{number}/")
        seen = time.perf_counter() - started
        cpu = meter.stop()
        load_after = procs.load()
        peak = {name: procs.peak_rss_mb(pid) for name, pid in self.trees().items()}
        check = json.loads(self._manage(str(DB_SCRIPT), "verify", TEAM, PIPELINE, str(number), str(n)))
        if body["state"] != "succeeded":
            raise RuntimeError(f"run {number} ended {body['state']}: {body.get('error')}")
        wall = check["run"]["ended_at"] - submitted
        tasks = check["tasks"]
        return {
            "n": n,
            "run": number,
            "tasks": tasks,
            "wall_s": wall,
            "seen_s": seen,
            "post_s": post_s,
            "tasks_per_s": tasks / wall,
            "work_per_s": n / wall,
            "cpu_s": cpu,
            "cpu_ms_per_task": 1000 * sum(cpu.values()) / tasks,
            "verified": not check["problems"],
            "check": "; ".join(check["problems"])
            or (
                f"{tasks:,} task records succeeded with one attempt each ({check['by_step_kind_state']}), "
                f"{check['output_refs']:,} outputs all in the store, join total {check['join_total']:,}"
            ),
            "timeline": check["timeline"],
            "peak_rss_mb": peak,
            "others_cores": meter.others_cores,
            "load": [load_before, load_after],
        }

    @property
    def trees_with_redis(self) -> dict[str, int]:
        return {**self.trees(), **self.extra_trees}
