"""Serving vs MLflow: the same scikit-learn model behind `cellar-worker serve` and behind
`mlflow models serve` 3.17.2 (from .venv-mlflow, --env-manager local), same machine, same load.

    .venv/bin/python benchmarks/bench_serving.py [--quick] [--rounds N] [--seconds S]
        [--connections C] [--json OUT]

The model: LogisticRegression on 8 numeric features, fitted on a DataFrame, saved once with
`cellar.models.save_model` (an MLflow-format directory: MLflow serves that directory, Cellar
serves the same files from its artifact store). Both servers run one process, as each starts by
default. The load generator (serving/loadgen.py, asyncio + uvloop, keep-alive, closed loop with C
connections) is one program for both, run in its own process. Payloads: one row and 100 rows,
as {"dataframe_records": [...]}, which both accept. Rounds alternate the sides (Cellar first,
then MLflow first, ...) and each figure is the median over rounds, so that both meet the same
machine.

Cellar's serve runs as in production, with a deployment key, signature validation, routing and
prediction logging on (a 1 % input sample and per-minute stats flushed through the outbox); its
control plane here is a stub answering the route poll (serving/stub_control.py): the control
plane is not on the predict path.

Then, in-process: the time serve's predict path takes (key check, JSON parse, validation,
routing, prediction, stats, JSON encode) minus the model's own predict call, for one row: the
overhead Cellar adds over calling the model yourself (target < 1 ms p50).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = REPO / ".venv" / "bin"
MLFLOW_BIN = REPO / ".venv-mlflow" / "bin"
sys.path.insert(0, str(HERE))

from serving.stub_control import StubControl  # noqa: E402

TEAM, DEPLOYMENT, VERSION = "bench", "bench", "1"
FEATURES = [f"f{i}" for i in range(8)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_model(tmp: Path):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from cellar.models import save_model

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(0, 1, (5000, len(FEATURES))), columns=FEATURES)
    labels = (frame.sum(axis=1) + rng.normal(0, 1, 5000) > 0).astype(int)
    model = LogisticRegression(max_iter=1000).fit(frame, labels)
    mlmodel = save_model(model, tmp / "model", input_example=frame.head(5))
    return model, frame, mlmodel


def manifest_for(tmp: Path, frame, mlmodel, raw_key: str) -> tuple[dict, str]:
    from cellar.artifacts import store_from_url
    from cellar.models import reference_profile

    store_url = f"file://{tmp / 'store'}"
    store = store_from_url(store_url)
    files = {
        str(p.relative_to(tmp / "model")): store.put_blob(TEAM, p.read_bytes())
        for p in sorted((tmp / "model").rglob("*"))
        if p.is_file()
    }
    version = {
        "id": VERSION,
        "model": "bench",
        "version": 1,
        "flavor": "sklearn",
        "signature": mlmodel["signature"],
        "files": files,
        "profile": reference_profile(frame),
    }
    manifest = {
        "id": 1,
        "team": TEAM,
        "deployment": DEPLOYMENT,
        "routes": [{"version_id": VERSION, "weight": 1.0}],
        "models": {VERSION: version},
        "keys": [hashlib.sha256(raw_key.encode()).hexdigest()],
        "sample_rate": 0.01,
        "extensions": {},
    }
    return manifest, store_url


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str], ready_url: str, log: Path):
        self.name = name
        self.log = log
        self.proc = subprocess.Popen(
            command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(ready_url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def load(url: str, body_file: Path, headers: list[str], *, seconds: float, connections: int) -> dict:
    command = [str(BIN / "python"), str(HERE / "serving" / "loadgen.py"), url, str(body_file)]
    command += ["--seconds", str(seconds), "--connections", str(connections)]
    for header in headers:
        command += ["--header", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def overhead(manifest: dict, store_url: str, raw_key: str, tmp: Path, frame, n: int) -> dict:
    """In-process: serve's predict path vs the model's own predict, one row."""
    import numpy as np
    import pandas as pd

    from cellar.artifacts import store_from_url
    from cellar_worker.serve.app import ServeApp
    from cellar_worker.serve.config import ServeConfig
    from cellar_worker.serve.loader import load_version
    from cellar_worker.serve.routing import build_table

    config = ServeConfig(api_url="http://127.0.0.1:9", token="x", artifact_store_url=store_url, cache_dir=tmp / "c2")
    app = ServeApp(config)  # not started: no sync thread, the outbox only buffers
    predictor = load_version(store_from_url(store_url), config.cache_dir, TEAM, manifest["models"][VERSION])
    app.state.tables = {(TEAM, DEPLOYMENT): build_table(manifest, {VERSION: predictor}, None)}
    row = frame.iloc[0].to_dict()
    body = json.dumps({"dataframe_records": [row]}).encode()
    raw_model = predictor.model.raw
    array = np.array([[row[f] for f in FEATURES]])
    one_frame = pd.DataFrame([row])

    def timed(fn) -> list[float]:
        for _ in range(200):
            fn()
        out = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
        out.sort()
        return out

    import orjson

    def serve_path():
        status, payload = app.predict(TEAM, DEPLOYMENT, raw_key, body)
        assert status == 200, payload
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)

    serve = timed(serve_path)
    model_array = timed(lambda: raw_model.predict(array))
    model_frame = timed(lambda: raw_model.predict(one_frame))

    def p(values: list[float], q: float) -> float:
        return values[int(q * (len(values) - 1))]

    return {
        "serve_p50_ms": p(serve, 0.5),
        "serve_p99_ms": p(serve, 0.99),
        "model_array_p50_ms": p(model_array, 0.5),
        "model_frame_p50_ms": p(model_frame, 0.5),
        "overhead_vs_array_p50_ms": p(serve, 0.5) - p(model_array, 0.5),
        "overhead_vs_frame_p50_ms": p(serve, 0.5) - p(model_frame, 0.5),
        "outbox_pending": app.outbox.pending,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    tmp = Path(tempfile.mkdtemp(prefix="cellar-bench-serving-"))
    servers: list[Server] = []
    try:
        model, frame, mlmodel = build_model(tmp)
        raw_key = "cdk_bench_" + "k" * 40
        token = "csv_bench"
        manifest, store_url = manifest_for(tmp, frame, mlmodel, raw_key)
        bodies = {}
        for label, rows in (("1 row", 1), ("100 rows", 100)):
            path = tmp / f"body-{rows}.json"
            path.write_text(json.dumps({"dataframe_records": frame.head(rows).to_dict(orient="records")}))
            bodies[label] = path

        with StubControl(manifest, token) as control:
            cellar_port, mlflow_port = free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLAR_", "DATABASE_URL", "MLFLOW_"))}
            cellar_env = {
                **env,
                "CELLAR_API_URL": control.url,
                "CELLAR_SERVE_TOKEN": token,
                "ARTIFACT_STORE_URL": store_url,
                "CELLAR_SERVE_CACHE": str(tmp / "cache"),
            }
            cellar = Server(
                "cellar",
                [str(BIN / "cellar-worker"), "serve", "--port", str(cellar_port), "--loglevel", "WARNING"],
                cellar_env,
                f"http://127.0.0.1:{cellar_port}/readyz",
                tmp / "cellar.log",
            )
            servers.append(cellar)
            mlflow = Server(
                "mlflow",
                [
                    str(MLFLOW_BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(tmp / "model"),
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(mlflow_port),
                ],  # fmt: skip
                {**env, "PATH": f"{MLFLOW_BIN}:{env.get('PATH', '')}"},
                f"http://127.0.0.1:{mlflow_port}/ping",
                tmp / "mlflow.log",
            )
            servers.append(mlflow)
            sides = {
                "cellar": (
                    f"http://127.0.0.1:{cellar_port}/serve/{TEAM}/{DEPLOYMENT}/predict",
                    [f"Authorization: Bearer {raw_key}"],
                ),
                "mlflow": (f"http://127.0.0.1:{mlflow_port}/invocations", []),
            }
            # Same answers from both before timing anything.
            batch = json.loads(bodies["100 rows"].read_text())
            ours = requests.post(sides["cellar"][0], json=batch, headers={"Authorization": f"Bearer {raw_key}"})
            theirs = requests.post(sides["mlflow"][0], json=batch)
            assert ours.status_code == 200 and theirs.status_code == 200, (ours.text, theirs.text)
            assert ours.json()["predictions"] == theirs.json()["predictions"] == model.predict(frame.head(100)).tolist()

            results: dict[tuple[str, str], list[dict]] = {}
            for round_index in range(args.rounds):
                order = ["cellar", "mlflow"] if round_index % 2 == 0 else ["mlflow", "cellar"]
                for label, body in bodies.items():
                    for side in order:
                        url, headers = sides[side]
                        result = load(url, body, headers, seconds=args.seconds, connections=args.connections)
                        results.setdefault((side, label), []).append(result)
                        print(
                            f"  round {round_index + 1} {label:>8} {side:>6}: {result['rps']:8.0f} req/s  "
                            f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                            f"errors {result['errors']}",
                            flush=True,
                        )
            time.sleep(2.5)  # one outbox flush
            logged = (control.records, control.samples)

        for server in servers:
            server.stop()
        extra = overhead(manifest, store_url, raw_key, tmp, frame, 3000 if not args.quick else 500)

        def med(side: str, label: str, key: str) -> float:
            return statistics.median(r[key] for r in results[(side, label)])

        print()
        print(f"Serving, {args.rounds} round(s) x {args.seconds:g} s, {args.connections} connections, one process each")
        print(f"{'payload':>9} | {'cellar req/s':>12} {'p50':>7} {'p99':>7} | {'mlflow req/s':>12} {'p50':>7} "
              f"{'p99':>7} | {'throughput':>10} {'p99 ratio':>9}")  # fmt: skip
        summary = {}
        for label in bodies:
            c_rps, m_rps = med("cellar", label, "rps"), med("mlflow", label, "rps")
            c_p99, m_p99 = med("cellar", label, "p99_ms"), med("mlflow", label, "p99_ms")
            summary[label] = {
                "cellar": {k: med("cellar", label, k) for k in ("rps", "p50_ms", "p99_ms")},
                "mlflow": {k: med("mlflow", label, k) for k in ("rps", "p50_ms", "p99_ms")},
                "throughput_ratio": c_rps / m_rps,
                "p99_ratio_mlflow_over_cellar": m_p99 / c_p99,
                "errors": sum(r["errors"] for side in ("cellar", "mlflow") for r in results[(side, label)]),
            }
            print(
                f"{label:>9} | {c_rps:12.0f} {med('cellar', label, 'p50_ms'):7.2f} {c_p99:7.2f} | {m_rps:12.0f} "
                f"{med('mlflow', label, 'p50_ms'):7.2f} {m_p99:7.2f} | {c_rps / m_rps:9.2f}x {m_p99 / c_p99:8.2f}x"
            )
        print("(p99 ratio = MLflow's p99 / Cellar's: above 1 means Cellar's tail is shorter)")
        print(f"prediction-log records at the control plane: {logged[0]} ({logged[1]} sampled input rows)")
        print()
        print("In-process, one row (ms):")
        for key, value in extra.items():
            print(f"  {key:28} {value:.4f}" if isinstance(value, float) else f"  {key:28} {value}")
        if args.json:
            Path(args.json).write_text(json.dumps({"summary": summary, "overhead": extra}, indent=2))
        return 0
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
