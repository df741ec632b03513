"""The compare view of 100 runs × 10 metrics × 10,000 steps: Cellar's page against the data
MLflow's UI fetches for the same view, each measured as server time in-process, plus bytes sent.

    .venv/bin/python benchmarks/bench_compare.py [--quick]

Targets (the tracking issue): Cellar's compare page, with its metric charts, under 300 ms of
server time and under 1 MB sent. MLflow's side is its runs/search for the 100 runs plus one
metrics/get-history-bulk-interval per metric (its UI's chart data, downsampled in SQL).
SQLite on both sides. Population is not measured (Cellar's goes through its write path,
which keeps the step-bucket summaries; MLflow's is written straight into its tables).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tracking"))

import servers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIDE = Path(__file__).resolve().parent / "tracking" / "compare_side.py"


def run_side(python: Path, side: str, cfg: dict, env: dict, tmp: Path) -> dict:
    config, out = tmp / f"{side}-config.json", tmp / f"{side}-out.json"
    config.write_text(json.dumps(cfg))
    done = subprocess.run(
        [str(python), str(SIDE), side, str(config), str(out)], env=env, cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{side} side failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 steps per metric instead of 10,000")
    args = parser.parse_args(argv)
    cfg = {"runs": 100, "metrics": 10, "steps": 1_000 if args.quick else 10_000, "repeats": 3}
    cleanup = servers.Cleanup()
    try:
        tmp, cellar_env, _ = servers.prepare_cellar(cleanup, "sqlite")
        env = {**os.environ, **cellar_env}
        env.pop("PYTHONPATH", None)
        cellar = run_side(
            servers.CELLAR_BIN / "python", "cellar", {**cfg, "team": servers.TEAM, "user": servers.USER}, env, tmp
        )
        mtmp = servers.make_tmp(cleanup, "mlflow-compare-")
        db_path = mtmp / "mlflow.sqlite"
        menv = {**os.environ, **servers.mlflow_server_env(f"sqlite:///{db_path}", mtmp / "mlart")}
        menv.pop("PYTHONPATH", None)
        # MLflow's view takes minutes at full size: one repetition there.
        mcfg = {**cfg, "db_path": str(db_path), "repeats": 1 if not args.quick else cfg["repeats"]}
        mlflow = run_side(servers.MLFLOW_BIN / "python", "mlflow", mcfg, menv, mtmp)
    finally:
        cleanup.run()
    steps = cfg["steps"]
    print(
        f"\nCompare view: {cfg['runs']} runs × {cfg['metrics']} metrics × {steps:,} steps "
        f"({cellar['points_logged']:,} points; Cellar logged them at {cellar['write_points_per_s']:,.0f}/s "
        "through its write path), SQLite, server time in-process, median of 3 (MLflow: 1 at full size)"
    )
    print("| measure | Cellar | MLflow (its UI's data for the view) | x |")
    print("|---|---:|---:|---:|")
    print(
        f"| first view (cold), ms | {cellar['cold_ms']:.0f} | {mlflow['ms']:.0f} "
        f"| {mlflow['ms'] / cellar['cold_ms']:.1f} |"
    )
    print(
        f"| repeat view, ms | {cellar['warm_ms']:.0f} | {mlflow['ms']:.0f} | {mlflow['ms'] / cellar['warm_ms']:.1f} |"
    )
    print(f"| bytes sent | {cellar['bytes']:,} | {mlflow['bytes']:,} | {mlflow['bytes'] / cellar['bytes']:.1f} |")
    print("(MLflow's UI asks for 320 points per curve; Cellar draws 50 per curve at 100 runs, each stretch")
    print(" keeping its first, lowest, highest and last value.)")
    target = "met" if cellar["cold_ms"] < 300 and cellar["bytes"] < 1_000_000 else "MISSED"
    print(f"target (cold < 300 ms and < 1 MB): {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
