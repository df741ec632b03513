"""Helpers for the journey test (test_journey.py): the demo notebook made small, the warehouse,
a second browser tab that fails the test on a 5xx, and the screenshots that illustrate
docs/quickstart.md."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import SCREENSHOTS, snap

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
DOC_IMAGES = REPO / "docs" / "images"
PIPELINE = MODEL = DEPLOYMENT = "form-reader"
# The demo's parameters, made small for a 2-core machine: one family, its two settings (still a
# foreach with two branches and a "best" to pick).
SMALL_PARAMETERS = {
    'families = ["logistic", "forest", "svm"]': 'families = ["logistic"]',
}
# A scanned box as serve receives it: the 64 pixel columns the model was trained on (as run_demo.py).
SAMPLE_ROW = {f"p{i}": v for i, v in enumerate([0, 0, 5, 13, 9, 1, 0, 0] + [0, 0, 13, 15, 10, 15, 5, 0] * 7)}


def require_demo_packages() -> None:
    """The notebook's packages (requirements-demo.txt) in .venv (executors, serve) and .venv-hub (kernels)."""
    for python in (REPO / ".venv" / "bin" / "python", REPO / ".venv-hub" / "bin" / "python"):
        found = subprocess.run([str(python), "-c", "import sklearn, pandas, cloudpickle"], capture_output=True)
        if found.returncode != 0:
            pytest.fail(
                f"{python} lacks the demo notebook's packages: run `make .venv/.demo-installed hub-install`",
                pytrace=False,
            )


def write_warehouse(path: Path) -> int:
    """examples/demo/warehouse.py's write_warehouse (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("demo_warehouse", DEMO / "warehouse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_warehouse(path)


def demo_notebook() -> dict:
    """form_reader.ipynb with the small parameters, named for the `form-reader` pipeline."""
    notebook = json.loads((DEMO / "form_reader.ipynb").read_text())
    for cell in notebook["cells"]:
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            source = "".join(cell["source"])
            for old, new in SMALL_PARAMETERS.items():
                assert old in source, f"the demo notebook's parameters changed: {old!r} is gone"
                source = source.replace(old, new)
            cell["source"] = source
    notebook["metadata"]["cellar"] = {"pipeline": PIPELINE}
    return notebook


def write_notebook(workspace: Path) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "form_reader.ipynb").write_text(json.dumps(demo_notebook()))


def watch_for_errors(page: Page, problems: list[str]) -> Page:
    """A tab opened with context.new_page(): record its JavaScript errors and 5xx responses too."""
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: problems.append(f"JS error on {page.url}: {exc}"))
    page.on("response", lambda r: problems.append(f"{r.status} from {r.url}") if r.status >= 500 else None)
    return page


def traffic_until_ready(
    client, *, test: int, serve_url: str, key: str, metric: str, units: int = 1500, rounds: int = 4
) -> dict:
    """Rounds of simulated forms (new units each round; the challenger truly +30% accepted) until
    the results say "ready", as run_demo.py does. Each round waits until serve has flushed every
    exposure it made (it batches them), then reads fresh results."""
    from cellar.abstats.simulate import simulate

    results: dict = {}
    for number in range(1, rounds + 1):
        simulate(
            client=client, team="demo", deployment=DEPLOYMENT, test=test, serve_url=serve_url, key=key,
            units=units, effect=0.3, base_rate=0.5, metric=metric, row=SAMPLE_ROW, seed=number,
            unit_prefix=f"form-{number}",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            results = client.get(f"teams/demo/ab-tests/{test}/results/", refresh="1")
            if sum(arm["units"] for arm in results["arms"]) >= number * units or time.monotonic() > deadline:
                break
            time.sleep(1)
        arms = [(arm.get("key"), arm["units"]) for arm in results["arms"]]
        print(f"traffic round {number}: {results['decision']}; arms {arms}", flush=True)
        if results["decision"]["state"] == "ready":
            return results
    from cellar_server.abtests.models import Event, Exposure

    arms = [(arm.get("key"), arm["units"]) for arm in results.get("arms", [])]
    stored = Exposure.all_teams.filter(test_id=test).count(), Event.all_teams.filter(test_id=test).count()
    raise AssertionError(
        f"no decision after {rounds} rounds: {results.get('decision')}; arms {arms}; stored exposures, events: {stored}"
    )


class Shots:
    """Numbered screenshots of the journey: test-artifacts/screenshots/quickstart-<n>-<stage>.png, and
    with CELLAR_UPDATE_DOC_IMAGES=1 also docs/images/quickstart-<n>-<stage>.png."""

    def __init__(self) -> None:
        self.number = 0
        self.taken: list[str] = []

    def __call__(self, page: Page, stage: str) -> None:
        self.number += 1
        name = f"{self.number:02d}-{stage}"
        snap(page, f"quickstart-{name}")
        self.taken.append(name)

    def publish(self) -> None:
        if os.environ.get("CELLAR_UPDATE_DOC_IMAGES") != "1":
            return
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        for name in self.taken:
            shutil.copyfile(SCREENSHOTS / f"quickstart-{name}.png", DOC_IMAGES / f"quickstart-{name}.png")
