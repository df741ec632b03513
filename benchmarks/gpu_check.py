"""Run the GPU example's `gpu:1` training step on whatever device this machine has, two ways, and print it.

    python benchmarks/gpu_check.py [--epochs 300] [--n 4096] [--json OUT]

1. **executor**: the way a `gpu` pool agent runs it. An `ExecutorPool` with one executor per GPU
   that nvidia-smi lists (CUDA_VISIBLE_DEVICES set to one device), or, with no GPU, in the
   GPU fallback (no device, CELLAR_GPU_FALLBACK=1); the `data` step, then `train` with `data`'s
   outputs, through `cellar_worker.executors` and an artifact store in a temporary folder.
2. **local runner**: `cellar.pipelines.runner.local.run_pipeline` on the compiled notebook.

Each prints the step's `trained_on` (device, GPU name, CUDA_VISIBLE_DEVICES, whether it ran under
the fallback, torch version, seconds for the epochs) and the fitted weight and bias. Needs torch
(`pip install torch==2.13.0`); exits 1 when a run fails or the fit is off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "gpu_training" / "train_gpu.ipynb"


def compiled():
    from cellar.pipelines.compiler import compile_notebook
    from cellar.pipelines.spec import PoolOffer

    pools = {
        "cpu": PoolOffer(name="cpu", cpu=float(os.cpu_count() or 1)),
        "gpu": PoolOffer(name="gpu", cpu=float(os.cpu_count() or 1), gpu=1),
    }
    return compile_notebook(NOTEBOOK, pools=pools, notebook_name=NOTEBOOK.name).spec


def through_executor(spec, parameters: dict[str, Any], home: Path) -> dict[str, Any]:
    from cellar.artifacts.local import LocalArtifactStore
    from cellar.pipelines.execute import ArtifactRef, load_artifact
    from cellar_worker.executors import ExecutorPool, executor_environment
    from cellar_worker.worker_status import nvidia_gpus

    gpus = nvidia_gpus()
    devices = [str(gpu["index"]) for gpu in gpus]
    store_dir = home / "executor-artifacts"
    pool = ExecutorPool(
        env=executor_environment(artifact_store_url=f"file://{store_dir}"),
        devices=devices or None,
        gpu_fallback=not devices,
    )
    steps = {step.name: step for step in spec.steps}
    outputs: dict[str, dict[str, Any]] = {}
    try:
        for name in ("data", "train"):
            step = steps[name]
            executor = pool.acquire("gpu-check", "env")
            try:
                request = {
                    "op": "run",
                    "kind": "step",
                    "team": "gpu-check",
                    "step": asdict(step),
                    "source": None,
                    "parameters": parameters,
                    "inputs": {var: outputs[producer][var] for var, producer in step.inputs.items()},
                    "item": None,
                    "timeout": None,
                    "env": {},
                    "stdout": str(home / f"{name}.stdout"),
                    "stderr": str(home / f"{name}.stderr"),
                }
                started = time.perf_counter()
                answer = executor.run(request)
                elapsed = time.perf_counter() - started
                device = pool.device_of(executor)
            finally:
                pool.release(executor)
            if not answer.get("ok"):
                raise RuntimeError(f"{name} failed in the executor: {json.dumps(answer.get('error'))[:2000]}")
            outputs[name] = answer["outputs"]
            print(f"  executor: {name} in {elapsed:.2f}s (CUDA_VISIBLE_DEVICES={device!r})", flush=True)
        store = LocalArtifactStore(store_dir)
        load = lambda var: load_artifact(ArtifactRef.from_dict(outputs["train"][var]), store=store, team="gpu-check")  # noqa: E731
        return {
            "gpus": gpus,
            "trained_on": load("trained_on"),
            "weight": load("weight"),
            "bias": load("bias"),
        }
    finally:
        pool.close()


def through_local_runner(spec, parameters: dict[str, Any], home: Path) -> dict[str, Any]:
    from cellar.pipelines.runner.local import run_pipeline

    run = run_pipeline(spec, parameters, directory=home / "local", progress=False, cache=False)
    if not run.ok:
        raise RuntimeError(f"the local run failed: {run.error}")
    return {"trained_on": run.load("train", "trained_on"), "weight": run.load("train", "weight"),
            "bias": run.load("train", "bias")}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_check: torch is not installed (pip install torch==2.13.0)", file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available()
    devices = f" ({torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)})" if cuda else ""
    print(f"torch {torch.__version__}; CUDA available: {cuda}{devices}", flush=True)
    spec = compiled()
    train = next(step for step in spec.steps if step.name == "train")
    print(f"compiled {NOTEBOOK.name}: step 'train' on pool {train.resources.pool!r} with {train.resources.gpu} GPU")
    parameters = {"epochs": args.epochs, "n": args.n, "lr": 0.1, "seed": 7}
    results = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        home = Path(tmp)
        for name, run in (("executor", through_executor), ("local runner", through_local_runner)):
            try:
                result = run(spec, parameters, home)
            except Exception as exc:  # noqa: BLE001 - report and go on to the other way
                print(f"{name}: FAILED: {exc}", flush=True)
                ok = False
                continue
            results[name] = result
            fit = abs(result["weight"] - 3.0) < 0.1 and abs(result["bias"] - 2.0) < 0.1
            ok = ok and fit
            print(f"{name}: trained on {json.dumps(result['trained_on'])}; weight {result['weight']:.3f}, "
                  f"bias {result['bias']:.3f} ({'fit ok' if fit else 'FIT OFF'})", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
