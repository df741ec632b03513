"""`cellar.load_task(run, step, index=None)`: a task of a platform run, back in Python.

    import cellar
    inputs, outputs = cellar.load_task("churn/12", "train", index=3)
    task = cellar.load_task("churn/12", "train", index=3)   # or keep the whole record
    task.inputs["part"], task.item, task.parameters, task.code, task.error

`run` names the pipeline and the run's number: "churn/12", "churn#12", or the number with
`pipeline="churn"`. The task's inputs (its foreach element included, under the step's item
name) and outputs are read through the API (`GET …/runs/<n>/tasks/<id>/` and the blobs it
references) and deserialized here with the serializer each value was stored with; a join's input
is a list in element order. A foreach step named without `index` whose expansion failed (its
iterable could not be evaluated) gives that expansion task, whose code is the iterable's
evaluation. Credentials as everywhere in the SDK: cellar.login(), or
CELLAR_URL / CELLAR_TOKEN / CELLAR_TEAM. A failed task has no outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cellar.client import CellarAPIError, Client

_RUN = re.compile(r"^\s*(?P<pipeline>[^/#\s]+)\s*[/#]\s*(?P<number>\d+)\s*$")


class TaskNotFound(LookupError):
    pass


@dataclass
class LoadedTask:
    """A task's record with its values loaded. Unpacks as `inputs, outputs`."""

    pipeline: str
    run: int
    step: str
    index: int | None
    task: int
    state: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    item_name: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    version: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    prelude: str = ""
    error: dict[str, Any] | None = None
    kind: str = "step"  # "expand": the task that evaluated a foreach's iterable
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    def __iter__(self):
        yield self.inputs
        yield self.outputs

    @property
    def item(self) -> Any:
        return self.inputs.get(self.item_name) if self.item_name else None


def parse_run(run: str | int, pipeline: str | None = None) -> tuple[str, int]:
    """("churn", 12) from "churn/12", "churn#12", or 12 with pipeline="churn"."""
    if isinstance(run, int) or (isinstance(run, str) and run.strip().isdigit()):
        if not pipeline:
            raise ValueError(f"run {run}: name its pipeline too, as 'pipeline/{run}' or pipeline=...")
        return pipeline, int(run)
    match = _RUN.match(str(run))
    if not match:
        raise ValueError(f"'{run}' does not name a run: use 'pipeline/number', e.g. 'churn/12'")
    return match["pipeline"], int(match["number"])


class TaskReader:
    """Reads one team's runs through the REST API (a Client with the token)."""

    def __init__(self, client: Client, team: str):
        self.client = client
        self.team = team

    def base(self, pipeline: str, number: int) -> str:
        return f"teams/{quote(self.team)}/pipelines/{quote(pipeline)}/runs/{number}/"

    def find(self, pipeline: str, number: int, step: str, index: int | None) -> dict[str, Any]:
        listing = self.client.get(
            self.base(pipeline, number) + "tasks/", step=step, kind="step", index=-1 if index is None else index
        )
        rows = listing.get("results") or []
        if not rows and index is None:
            # A foreach step named without an element: its expansion (the task that evaluated the
            # iterable) when that is what did not succeed; otherwise an element was meant.
            listing = self.client.get(self.base(pipeline, number) + "tasks/", step=step, kind="expand", index=-1)
            rows = [r for r in listing.get("results") or [] if r.get("state") not in ("succeeded", "cached")]
        if not rows:
            where = step if index is None else f"{step}[{index}]"
            hint = " (a foreach step: give index=…)" if index is None else ""
            raise TaskNotFound(f"run {pipeline}/{number} has no task {where}{hint}")
        return self.client.get(self.base(pipeline, number) + f"tasks/{rows[0]['id']}/")

    def blob(self, pipeline: str, number: int, task: int, ref: dict[str, Any]) -> Any:
        from cellar.pipelines.serializers import deserialize

        if ref.get("inline") is not None:  # a small value travels in its reference (execute/refs.py)
            return deserialize(ref["serializer"], ref["inline"].encode("utf-8"))
        url = f"{self.client.url}/api/v1/{self.base(pipeline, number)}tasks/{task}/blobs/{ref['sha256']}/"
        response = self.client._session.get(url, timeout=self.client.timeout)
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
            except ValueError:
                error = {}
            raise CellarAPIError(
                response.status_code, error.get("code", "http_error"), error.get("message", response.text[:200])
            )
        return deserialize(ref["serializer"], response.content)

    def load(self, pipeline: str, number: int, step: str, index: int | None) -> LoadedTask:
        record = self.find(pipeline, number, step, index)
        task_id = record["id"]

        def value(ref: Any) -> Any:
            if isinstance(ref, list):
                return [self.blob(pipeline, number, task_id, r) for r in ref]
            return self.blob(pipeline, number, task_id, ref)

        inputs = {name: value(ref) for name, ref in sorted((record.get("inputs") or {}).items())}
        source = record.get("source") or {}
        item_name = None
        if record.get("item"):
            item_name = (source.get("foreach") or {}).get("item") or "item"
            inputs[item_name] = value(record["item"])
        outputs = {name: value(ref) for name, ref in sorted((record.get("outputs") or {}).items())}
        code = source.get("code", "")
        if record.get("kind") == "expand":
            # The task evaluated the foreach's iterable (execute/step.py evaluate_foreach), not the code.
            iterable = (source.get("foreach") or {}).get("iterable", "")
            code = f"from cellar.pipelines.execute.step import expand_foreach\n\nelements = expand_foreach({iterable})"
        return LoadedTask(
            pipeline=pipeline,
            run=number,
            step=step,
            index=record.get("index"),
            task=task_id,
            state=record.get("state", ""),
            inputs=inputs,
            outputs=outputs,
            item_name=item_name,
            parameters=record.get("parameters") or {},
            version=record.get("version") or {},
            code=code,
            kind=record.get("kind", "step"),
            prelude=source.get("prelude", ""),
            error=record.get("error"),
            record=record,
        )


def reader_for(url: str | None = None, token: str | None = None, team: str | None = None) -> TaskReader:
    """A TaskReader for the logged-in session (cellar.login(), or the CELLAR_* variables)."""
    from cellar.tracking.session import current_session, login

    if url is None and token is None and team is None:
        session = current_session()
    else:
        session = login(url, token, team)
    return TaskReader(Client(session.url, session.token), session.team)


def load_task(
    run: str | int,
    step: str,
    index: int | None = None,
    *,
    pipeline: str | None = None,
    reader: TaskReader | None = None,
) -> LoadedTask:
    """The task `step` (element `index` of a foreach) of `run`, with its inputs and outputs loaded."""
    name, number = parse_run(run, pipeline)
    return (reader or reader_for()).load(name, number, step, index)
