"""Notebook compiler vs Kale: `compile_notebook` beside Kale's notebook processor, same notebooks.

    .venv/bin/python benchmarks/bench_compile.py [--runs N] [--cells 50,200] [--kale-python PATH] [--setup-kale]

The job both sides do: read a tagged .ipynb (nbformat), split it into steps, and infer each
step's inputs and outputs by static analysis. Cellar: `compile_notebook` (tags, magics, ast
name analysis, DAG, resources, serializability heuristics, canonical spec and its hash).
Kale: `kale.processors.nbprocessor.NotebookProcessor(...).to_pipeline()` from kubeflow-kale
2.3.0 (nbformat read, tag parsing, pyflakes per step, ancestors' marshal candidates, free
variables of functions), the part of `kale` that precedes KFP code generation. Kale runs in
its own virtualenv (its kfp dependencies do not belong in ours): `--setup-kale` creates it at
~/.cache/cellar-bench/kale with `pip install kubeflow-kale==2.3.0`, or point --kale-python
(or $KALE_PYTHON) at one. Without it, the peer is "the Kale approach" written minimally here
(nbformat read + one pyflakes check per step with imports and functions prepended): a lower
bound of Kale's cost, and labelled as such.

The notebooks are generated (seeded): markdown between steps, an `imports` cell, a
`pipeline-parameters` cell, a `functions` cell whose helpers read globals, steps of one to
three cells that read the outputs of earlier steps, mutate frames and call helpers, and a few
`skip` cells; tags are ones both tools accept. Each side compiles each notebook once cold
(its first call in a fresh process) and then --runs times (Kale itself --kale-runs times: it
takes seconds per call on the bigger notebook); the median warm time is compared.
Both sides run one after the other on the same machine, never at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
KALE_HOME = Path.home() / ".cache" / "cellar-bench" / "kale"
KALE_VERSION = "2.3.0"

HELPERS = """
def clean_column(frame, name):
    frame[name] = frame[name].fillna(DEFAULT_FILL)
    return frame


def score(y_true, y_pred):
    return sum(1 for a, b in zip(y_true, y_pred) if a == b) / max(len(y_true), 1)


def bucket(value):
    return min(int(value // BUCKET_WIDTH), MAX_BUCKET)
"""


def _step_code(rng: random.Random, k: int, earlier: list[str]) -> tuple[str, list[str], list[str]]:
    """One step's first cell: reads 1-2 earlier outputs, binds two new names."""
    reads = rng.sample(earlier, min(len(earlier), rng.choice([1, 2]))) if earlier else []
    a, b = f"frame_{k}", f"stats_{k}"
    source = [f"# step {k}: derive features"]
    if reads:
        source.append(f"{a} = {reads[0]}.copy() if hasattr({reads[0]}, 'copy') else dict({reads[0]})")
    else:
        source.append(f"{a} = {{'x': list(range(n_rows)), 'y': [i % 3 for i in range(n_rows)]}}")
    source += [
        f"{b} = {{key: len(values) for key, values in {a}.items()}}",
        f"for key in list({a}):",
        f"    {a}[key] = [bucket(v) for v in {a}[key]]",
    ]
    if len(reads) > 1:
        source.append(f"{b}['joined'] = len({reads[1]})")
    source.append(f"print(f'step {k}: {{len({a})}} columns, seed {{seed}}')")
    return "\n".join(source), [a, b], reads


def make_notebook(cells: int, seed: int = 7) -> nbformat.NotebookNode:
    rng = random.Random(seed)
    out = [
        new_markdown_cell("# Generated pipeline\nA realistic tagged notebook for the compiler benchmark."),
        new_code_cell("import math\nimport json\nimport collections", metadata={"tags": ["imports"]}),
        new_code_cell(
            "n_rows = 1000\nseed = 42\nlearning_rate = 0.1\nDEFAULT_FILL = 0\nBUCKET_WIDTH = 10\nMAX_BUCKET = 20",
            metadata={"tags": ["pipeline-parameters"]},
        ),
        new_code_cell(HELPERS.strip(), metadata={"tags": ["functions"]}),
    ]
    outputs: list[str] = []
    k = 0
    while len(out) < cells:
        k += 1
        roll = rng.random()
        if roll < 0.15:
            out.append(new_markdown_cell(f"## Part {k}\nWhat the next step does and why."))
            continue
        if roll < 0.22 and outputs:
            out.append(new_code_cell(f"print({rng.choice(outputs)})", metadata={"tags": ["skip"]}))
            continue
        code, made, reads = _step_code(rng, k, outputs[-6:])
        # Kale passes data only along the DAG its users draw with prev:, so the notebook
        # names each step it reads from, as a Kale user would.
        prevs = sorted({f"prev:s{name.split('_')[1]}" for name in reads})
        out.append(new_code_cell(code, metadata={"tags": [f"step:s{k}", *prevs]}))
        if rng.random() < 0.5 and len(out) < cells:
            extra = f"total_{k} = sum(len(v) for v in {made[0]}.values())\n{made[1]}['total'] = total_{k}"
            out.append(new_code_cell(extra))
        outputs += made
    nb = new_notebook(cells=out[:cells])
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index}"
    # Kale reads its settings from the notebook metadata.
    nb.metadata["kubeflow_notebook"] = {"experiment_name": "bench", "pipeline_name": "bench"}
    return nb


CELLAR_SIDE = r"""
import json, sys, time
t0 = time.perf_counter()
from cellar.pipelines.compiler import compile_notebook
import_s = time.perf_counter() - t0
path, runs = sys.argv[1], int(sys.argv[2])
t = time.perf_counter(); result = compile_notebook(path); cold = time.perf_counter() - t
warm = []
for _ in range(runs):
    t = time.perf_counter(); result = compile_notebook(path); warm.append(time.perf_counter() - t)
steps = result.spec.steps
print(json.dumps({"import_s": import_s, "cold": cold, "warm": warm, "steps": len(steps),
                  "edges": sum(len(s.inputs) for s in steps)}))
"""

KALE_SIDE = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
t0 = time.perf_counter()
from kale.processors.nbprocessor import NotebookProcessor
import_s = time.perf_counter() - t0
path, runs = sys.argv[1], int(sys.argv[2])
def once():
    processor = NotebookProcessor(path, nb_metadata_overrides={"experiment_name": "bench", "pipeline_name": "bench"})
    processor.to_pipeline()
    return processor.pipeline
t = time.perf_counter(); pipeline = once(); cold = time.perf_counter() - t
warm = []
for _ in range(runs):
    t = time.perf_counter(); pipeline = once(); warm.append(time.perf_counter() - t)
steps = list(pipeline.steps)
print(json.dumps({"import_s": import_s, "cold": cold, "warm": warm, "steps": len(steps),
                  "edges": sum(len(s.ins) for s in steps)}))
"""

# The Kale approach, minimally: what Kale's dependency detection costs at the least.
KALE_APPROACH_SIDE = r"""
import json, sys, time
t0 = time.perf_counter()
import nbformat
from pyflakes import api as flakes_api
from pyflakes import messages as flakes_messages
from pyflakes import reporter as flakes_reporter
import_s = time.perf_counter() - t0
path, runs = sys.argv[1], int(sys.argv[2])

class Collect(flakes_reporter.Reporter):
    def __init__(self):
        self.names = set()
    def flake(self, message):
        if isinstance(message, flakes_messages.UndefinedName):
            self.names.add(message.message_args[0])
    def unexpectedError(self, *a): pass
    def syntaxError(self, *a): pass

def once():
    nb = nbformat.read(path, as_version=4)
    shared, steps, current = [], [], None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "skip" in tags or "pipeline-parameters" in tags:
            continue
        if "imports" in tags or "functions" in tags:
            shared.append(cell.source); continue
        step = next((t[5:] for t in tags if t.startswith("step:")), None)
        if step:
            current = [step, []]; steps.append(current)
        if current:
            current[1].append(cell.source)
    prefix = "\n".join(shared)
    ins = {}
    for name, sources in steps:
        reporter = Collect()
        flakes_api.check(prefix + "\n" + "\n".join(sources), name, reporter)
        ins[name] = reporter.names
    return ins

t = time.perf_counter(); ins = once(); cold = time.perf_counter() - t
warm = []
for _ in range(runs):
    t = time.perf_counter(); ins = once(); warm.append(time.perf_counter() - t)
print(json.dumps({"import_s": import_s, "cold": cold, "warm": warm, "steps": len(ins),
                  "edges": sum(len(v) for v in ins.values())}))
"""


def side(python: str, code: str, path: Path, runs: int, env: dict | None = None) -> dict:
    completed = subprocess.run(
        [python, "-c", code, str(path), str(runs)], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def setup_kale() -> str:
    python = KALE_HOME / "bin" / "python"
    if not python.exists():
        print(f"creating {KALE_HOME} with kubeflow-kale=={KALE_VERSION} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KALE_HOME)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"kubeflow-kale=={KALE_VERSION}"], check=True)
    return str(python)


def find_kale(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("KALE_PYTHON"), str(KALE_HOME / "bin" / "python")):
        if candidate and Path(candidate).exists():
            check = subprocess.run(
                [candidate, "-c", "import kale.processors.nbprocessor"], capture_output=True, timeout=120
            )
            if check.returncode == 0:
                return candidate
    return None


def ms(value: float) -> str:
    return f"{value * 1000:8.1f} ms"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kale-runs", type=int, default=5, help="warm runs for Kale itself (15 s each at 200 cells)")
    parser.add_argument("--cells", default="50,200")
    parser.add_argument("--kale-python", help="a Python with kubeflow-kale installed (default: $KALE_PYTHON)")
    parser.add_argument("--setup-kale", action="store_true", help=f"create {KALE_HOME} with kubeflow-kale")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    kale_python = setup_kale() if args.setup_kale else find_kale(args.kale_python)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "sdk"), os.environ.get("PYTHONPATH", "")])}
    peers = [("Kale approach (nbformat + pyflakes per step, minimal)", sys.executable, KALE_APPROACH_SIDE, env)]
    if kale_python:
        peers.insert(0, (f"Kale {KALE_VERSION} NotebookProcessor.to_pipeline", kale_python, KALE_SIDE, None))
    else:
        print("kubeflow-kale not found: run with --setup-kale (or --kale-python) to compare against Kale itself")
    print(f"runs per notebook: {args.runs} (median of warm runs; cold = first call in a fresh process)")
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for cells in [int(c) for c in args.cells.split(",")]:
            path = Path(tmp) / f"bench_{cells}.ipynb"
            nbformat.write(make_notebook(cells), path)
            ours = side(sys.executable, CELLAR_SIDE, path, args.runs, env)
            ours_warm = statistics.median(ours["warm"])
            print(f"\n{cells}-cell notebook: {ours['steps']} steps")
            print(
                f"  {'Cellar compile_notebook':<56} warm {ms(ours_warm)}  cold {ms(ours['cold'])}  "
                f"({ours['edges']} input edges)"
            )
            row = {"cells": cells, "steps": ours["steps"], "cellar_ms": ours_warm * 1000, "peers": {}}
            for label, python, code, peer_env in peers:
                runs = args.kale_runs if python != sys.executable else args.runs
                theirs = side(python, code, path, runs, peer_env)
                warm = statistics.median(theirs["warm"])
                print(
                    f"  {label:<56} warm {ms(warm)}  cold {ms(theirs['cold'])}  ({theirs['edges']} ins)  "
                    f"ratio Cellar/peer {ours_warm / warm:.2f}x"
                )
                row["peers"][label] = {"ms": warm * 1000, "ratio": ours_warm / warm, "steps": theirs["steps"]}
            figures.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
