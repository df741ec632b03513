"""`make demo`: Cellar's whole journey on a running platform, as a user would walk it.

    make up                 # in one terminal
    make demo               # in another: about five minutes on a 2-core machine

Everything goes through the public surface only (the REST API, the `cellar` CLI and SDK, the
serve process), so the demo is also a smoke test of what users touch:

 1. a warehouse: scikit-learn's handwritten digits as a table of scanned form boxes, and the
    team's `warehouse` connection to it;
 2. the notebook `form_reader.ipynb` promoted to the `form-reader` pipeline and run: load (a data
    set, so lineage records it), clean, candidates, a foreach training 6 models, register the best
    as `champion`;
 3. a deployment `form-reader` serving the champion, and a deployment key;
 4. a challenger: the same pipeline with one parameter changed (ink-profile features),
    registered as `challenger`;
 5. an A/B test champion vs challenger, with simulated traffic whose true effect is known
    (`cellar simulate-traffic`), until the statistics say "ready";
 6. "Promote winner": the deployment serves the challenger, which becomes `champion`.

Re-running is safe: the connection and deployment are updated in place, the pipeline version is
the same (content-addressed) and unchanged steps come from the cache, a test still running from an
earlier demo is stopped first, and each run registers new model versions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from warehouse import sample_rows, write_warehouse  # noqa: E402

from cellar.client import CellarAPIError, Client  # noqa: E402

PIPELINE = MODEL = DEPLOYMENT = "form-reader"
NOTEBOOK = HERE / "form_reader.ipynb"
METRIC = "auto_accepted"  # the clerk accepted the form as read: the fewer corrections, the better
# A scanned box as the serve process receives it: the 64 pixel columns the model was trained on.
SAMPLE_ROW = {f"p{i}": v for i, v in enumerate([0, 0, 5, 13, 9, 1, 0, 0] + [0, 0, 13, 15, 10, 15, 5, 0] * 7)}


def say(stage: str, message: str = "") -> None:
    print(f"\n== {stage}" + (f": {message}" if message else ""), flush=True)


def show(label: str, url: str) -> None:
    print(f"   {label:<22} {url}", flush=True)


class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.url = args.url.rstrip("/")
        self.team = args.team
        self.client = Client(url=self.url, token=args.token)
        self.base = f"teams/{self.team}"
        self.env = {
            **os.environ,
            "CELLAR_URL": self.url,
            "CELLAR_TOKEN": args.token,
            "CELLAR_TEAM": self.team,
        }

    def page(self, path: str) -> str:
        return f"{self.url}/t/{self.team}/{path.lstrip('/')}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, self.base + path, **kwargs)

    def stop_earlier_tests(self) -> None:
        """A test left running by an earlier demo freezes `champion`: stop it (its results stay)."""
        for test in self.api("GET", "/ab-tests/", params={"deployment": DEPLOYMENT})["results"]:
            if test["status"] == "running":
                self.api("POST", f"/ab-tests/{test['id']}/stop/", json={})
                print(f"   stopped the earlier demo's A/B test '{test['name']}'", flush=True)

    # --- 1. the warehouse -------------------------------------------------------------------------------

    def warehouse(self) -> None:
        path = Path(self.args.home).resolve() / "demo" / "warehouse.sqlite3"
        rows = write_warehouse(path)
        self.live_rows = sample_rows(path, 300)  # what the simulated clerks' scanners send
        config = {"url": f"sqlite:///{path}"}
        existing = {c["name"]: c for c in self.api("GET", "/connections/")["results"]}
        if "warehouse" in existing:
            self.api("PATCH", f"/connections/{existing['warehouse']['id']}/", json={"config": config})
        else:
            description = "The scanning team's warehouse (the demo's SQLite copy)."
            body = {"name": "warehouse", "kind": "sql", "config": config, "description": description}
            self.api("POST", "/connections/", json=body)
        say("Warehouse", f"{rows} scanned boxes in {path.name}; connection 'warehouse' ready")
        show("data page", self.page("data/"))

    # --- 2 and 4. the pipeline runs -------------------------------------------------------------------

    def run_pipeline(self, label: str, *params: str) -> dict:
        say(label, "promoting the notebook and running it (progress below)")
        command = [sys.executable, "-m", "cellar.cli", "promote", str(NOTEBOOK), "--pipeline", PIPELINE]
        command += ["--production", "--run", "--wait"]
        for param in params:
            command += ["-p", param]
        done = subprocess.run(command, env=self.env, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the {label.lower()} run did not succeed: see {self.page('pipelines/' + PIPELINE + '/')}")
        run = self.api("GET", f"/pipelines/{PIPELINE}/runs/")["results"][0]
        show("run (DAG, tasks)", self.page(f"pipelines/{PIPELINE}/runs/{run['number']}/"))
        return run

    def alias(self, alias: str) -> dict:
        number = self.api("GET", f"/models/{MODEL}/")["aliases"].get(alias)
        if number is None:
            raise SystemExit(f"the run did not register a '{alias}' version of {MODEL}")
        return self.api("GET", f"/models/{MODEL}/versions/{number}/")

    def compare_link(self, version: dict) -> None:
        show("model version", self.page(f"models/{MODEL}/versions/{version['version']}/"))
        experiment_runs = self.page("experiments/")
        show("experiments", experiment_runs)

    # --- 3. the deployment --------------------------------------------------------------------------

    def deploy(self, version: dict) -> str:
        routes = [{"version_id": str(version["id"]), "weight": 1.0}]
        names = {d["name"] for d in self.api("GET", "/deployments/")["results"]}
        if DEPLOYMENT in names:
            self.api("PATCH", f"/deployments/{DEPLOYMENT}/", json={"routes": routes})
        else:
            body = {"name": DEPLOYMENT, "routes": routes, "description": "Reads the digits on scanned forms."}
            self.api("POST", "/deployments/", json=body)
        for old in self.api("GET", f"/deployments/{DEPLOYMENT}/keys/")["results"]:
            if old["name"] == "demo traffic" and not old.get("revoked_at"):  # an earlier demo's
                self.api("DELETE", f"/deployments/{DEPLOYMENT}/keys/{old['id']}/")
        key = self.api("POST", f"/deployments/{DEPLOYMENT}/keys/", json={"name": "demo traffic"})["key"]
        say("Deployment", f"'{DEPLOYMENT}' serves {MODEL} v{version['version']} (champion)")
        show("deployment page", self.page(f"deployments/{DEPLOYMENT}/"))
        show("predict", f"{self.args.serve_url}/serve/{self.team}/{DEPLOYMENT}/predict")
        self.wait_until_served(key)
        return key

    def wait_until_served(self, key: str) -> None:
        import requests

        url = f"{self.args.serve_url}/serve/{self.team}/{DEPLOYMENT}/predict"
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = requests.post(
                    url,
                    json={"dataframe_records": [SAMPLE_ROW]},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=10,
                )
                if answer.status_code == 200:
                    print(f"   first prediction: {answer.json()}", flush=True)
                    return
                problem = f"{answer.status_code} {answer.text[:200]}"
            except requests.RequestException as exc:
                problem = str(exc)
            if time.monotonic() > deadline:
                raise SystemExit(f"the serve process did not answer at {url}: {problem}")
            time.sleep(2)

    # --- 5. the A/B test ------------------------------------------------------------------------------

    def ab_test(self, champion: dict, challenger: dict) -> dict:
        body = {
            "deployment": DEPLOYMENT,
            "name": f"ink profiles (v{challenger['version']}) vs v{champion['version']}",
            "variants": [
                {"version_id": str(champion["id"]), "weight": 0.5},
                {"version_id": str(challenger["id"]), "weight": 0.5},
            ],
            "metrics": [{"name": METRIC, "kind": "proportion", "role": "primary"}],
            "seed": f"demo-{int(time.time())}",
        }
        test = self.api("POST", "/ab-tests/", json=body)
        say("A/B test", f"'{test['name']}' started: half the forms go to each model")
        show("results page", self.page(f"ab-tests/{test['id']}/"))
        return test

    def wait_until_assigning(self, test: dict, key: str, challenger: dict) -> None:
        """Serve learns about the test on its next route poll; traffic sent before that is served by
        the champion without being enrolled, so wait until a unit is assigned the challenger."""
        import requests

        url = f"{self.args.serve_url}/serve/{self.team}/{DEPLOYMENT}/predict"
        deadline = time.monotonic() + 60
        for probe in range(10_000):
            row = {**self.live_rows[0], "unit_id": f"{test['id']}-probe-{probe}"}
            answer = requests.post(
                url, json={"dataframe_records": [row]}, headers={"Authorization": f"Bearer {key}"}, timeout=10
            )
            if answer.status_code == 200 and answer.json()["versions"] == [str(challenger["id"])]:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"the serve process did not start assigning units to the test: {answer.text[:300]}")
            time.sleep(0.2)

    def traffic(self, test: dict, key: str) -> dict:
        from cellar.abstats.simulate import simulate

        say("Traffic", f"simulated clerks: {self.args.units} forms per round, challenger truly +{self.args.effect:.0%}")
        for round_number in range(1, self.args.max_rounds + 1):
            simulate(
                client=self.client,
                team=self.team,
                deployment=DEPLOYMENT,
                test=test["id"],
                serve_url=self.args.serve_url,
                key=key,
                units=self.args.units,
                effect=self.args.effect,
                base_rate=0.6,
                metric=METRIC,
                rows=self.live_rows,
                seed=round_number,
                unit_prefix=f"{test['id']}-{round_number}",  # new forms every round
            )
            results = self.results(test, units=round_number * self.args.units)
            decision = results["decision"]
            print(f"   round {round_number}: {decision['state']}: {decision.get('summary', '')}", flush=True)
            if decision["state"] == "ready":
                return results
        page = self.page(f"ab-tests/{test['id']}/")
        raise SystemExit(f"no decision after {self.args.max_rounds} rounds: see {page}")

    def results(self, test: dict, units: int) -> dict:
        """Fresh results once the serve process has flushed every exposure of the traffic sent (it
        batches them every few seconds), or after 30 s with what has arrived."""
        deadline = time.monotonic() + 30
        while True:
            results = self.api("GET", f"/ab-tests/{test['id']}/results/", params={"refresh": "1"})
            if sum(arm["units"] for arm in results["arms"]) >= units or time.monotonic() > deadline:
                return results
            time.sleep(1)

    # --- 6. promote the winner ------------------------------------------------------------------------

    def promote(self, test: dict, challenger: dict) -> None:
        arm = next(a["key"] for a in test["variants"] if str(a["version_id"]) == str(challenger["id"]))
        self.api("POST", f"/ab-tests/{test['id']}/promote/", json={"arm": arm})
        say("Promoted", f"{MODEL} v{challenger['version']} is the champion; the deployment serves it to everyone")
        show("results page", self.page(f"ab-tests/{test['id']}/"))
        show("deployment page", self.page(f"deployments/{DEPLOYMENT}/"))
        show("model page", self.page(f"models/{MODEL}/"))

    def run(self) -> int:
        import requests

        try:
            requests.get(f"{self.url}/healthz", timeout=5).raise_for_status()
        except requests.RequestException:
            raise SystemExit(
                f"Cellar is not answering at {self.url}. Start it first with `make up` in another terminal "
                "(same CELLAR_HOME and CELLAR_PORT), then run `make demo` again."
            ) from None
        try:
            self.client.whoami()
        except CellarAPIError as exc:
            raise SystemExit(f"Cellar at {self.url} refused the demo's token: {exc}") from None
        self.stop_earlier_tests()
        self.warehouse()
        self.run_pipeline("Champion")
        champion = self.alias("champion")
        self.compare_link(champion)
        key = self.deploy(champion)
        self.run_pipeline("Challenger", "extra_features=true", "alias=challenger")
        challenger = self.alias("challenger")
        self.compare_link(challenger)
        test = self.ab_test(champion, challenger)
        self.wait_until_assigning(test, key, challenger)
        self.traffic(test, key)
        self.promote(test, challenger)
        where = f" (password in {self.args.password_file})" if self.args.password_file else ""
        print(f"\nSign in at {self.url}/ as '{self.args.user}'{where} to look around.", flush=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    port = int(os.environ.get("CELLAR_PORT", "8000"))
    parser = argparse.ArgumentParser(description="Cellar's demo: notebook to A/B-tested model on a running platform.")
    parser.add_argument("--url", default=os.environ.get("CELLAR_URL") or f"http://127.0.0.1:{port}")
    parser.add_argument("--serve-url", default=os.environ.get("CELLAR_SERVE_URL") or f"http://127.0.0.1:{port + 3}")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--team", default="demo")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password-file", default="")
    parser.add_argument("--home", default=os.environ.get("CELLAR_HOME", "var"))
    parser.add_argument("--units", type=int, default=1500, help="simulated forms per round of traffic")
    parser.add_argument("--effect", type=float, default=0.08, help="the challenger's true relative lift")
    parser.add_argument("--max-rounds", type=int, default=8)
    args = parser.parse_args(argv)
    args.token = Path(args.token_file).read_text().strip()
    return Demo(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
