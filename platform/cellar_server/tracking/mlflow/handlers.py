"""MLflow tracking endpoints: experiments, runs, metrics. Each handler parses fields and calls services."""

from __future__ import annotations

from django.http import HttpResponse

from cellar_server.core.scoping import team_scope
from cellar_server.tracking import selectors
from cellar_server.tracking import validation as v
from cellar_server.tracking.errors import invalid
from cellar_server.tracking.mlflow import serialize
from cellar_server.tracking.mlflow.auth import Caller, require_run
from cellar_server.tracking.mlflow.protocol import Fields
from cellar_server.tracking.models import LoggedModel, Run
from cellar_server.tracking.services import experiments, runs
from cellar_server.tracking.services.artifacts import artifact_list, join

READ, WRITE = "experiments:read", "experiments:write"


# --- experiments ------------------------------------------------------------------


def experiment_create(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_create(team=caller.team, name=f.required("name"), tags=f.list("tags"))
    return {"experiment_id": str(exp.number)}


def experiment_get(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get(team=caller.team, experiment_id=f.required("experiment_id"))
    return {"experiment": serialize.experiment(exp)}


def experiment_get_by_name(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get_by_name(team=caller.team, name=f.required("experiment_name"))
    return {"experiment": serialize.experiment(exp)}


def experiment_search(caller: Caller, f: Fields) -> dict:
    found, token = selectors.experiment_search(
        team=caller.team,
        view_type=f.get("view_type"),
        max_results=f.get("max_results"),
        page_token=f.get("page_token"),
        filter_string=f.get("filter") or "",
        order_by=f.list("order_by"),
    )
    payload = {"experiments": [serialize.experiment(e) for e in found]}
    if token:
        payload["next_page_token"] = token
    return payload


def experiment_delete(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get(team=caller.team, experiment_id=f.required("experiment_id"))
    experiments.experiment_set_lifecycle(experiment=exp, deleted=True)
    return {}


def experiment_restore(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get(team=caller.team, experiment_id=f.required("experiment_id"))
    experiments.experiment_set_lifecycle(experiment=exp, deleted=False)
    return {}


def experiment_update(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get(team=caller.team, experiment_id=f.required("experiment_id"))
    if f.get("new_name"):
        experiments.experiment_rename(experiment=exp, new_name=f.get("new_name"))
    return {}


def experiment_set_tag(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get(team=caller.team, experiment_id=f.required("experiment_id"))
    experiments.experiment_tag_set(experiment=exp, key=f.required("key"), value=f.required("value"))
    return {}


def experiment_delete_tag(caller: Caller, f: Fields) -> dict:
    exp = experiments.experiment_get(team=caller.team, experiment_id=f.required("experiment_id"))
    experiments.experiment_tag_delete(experiment=exp, key=f.required("key"))
    return {}


# --- runs ----------------------------------------------------------------------------


def _run(caller: Caller, f: Fields) -> Run:
    run_id = f.get("run_id") or f.get("run_uuid")
    require_run(caller, run_id)
    return runs.run_get(team=caller.team, run_id=run_id)


def _run_to_log(caller: Caller, f: Fields) -> Run:
    run_id = f.get("run_id") or f.get("run_uuid")
    require_run(caller, run_id)
    return runs.run_for_logging(team=caller.team, run_id=run_id)


def _model_outputs(caller: Caller, run: Run) -> list[dict]:
    with team_scope(caller.team.id):
        rows = LoggedModel.objects.filter(output_run=run).values_list("model_id", "output_step")
    return [{"model_id": model_id, "step": step} for model_id, step in rows]


def _full_run(caller: Caller, run: Run) -> dict:
    data = selectors.run_data_for([run.pk])[run.pk]
    return serialize.run(run, data, model_outputs=_model_outputs(caller, run))


def run_create(caller: Caller, f: Fields) -> dict:
    experiment_id = f.get("experiment_id") or "0"
    exp = experiments.experiment_get(team=caller.team, experiment_id=experiment_id)
    run = runs.run_create(
        team=caller.team,
        experiment=exp,
        user=caller.user,
        user_name=f.get("user_id") or "",
        run_name=f.get("run_name") or "",
        start_time=v.parse_int(f.get("start_time"), "start_time"),
        tags=f.list("tags"),
    )
    return {"run": _full_run(caller, run)}


def run_get(caller: Caller, f: Fields) -> dict:
    return {"run": _full_run(caller, _run(caller, f))}


def run_update(caller: Caller, f: Fields) -> dict:
    run = runs.run_update(
        run=_run(caller, f),
        status=f.get("status"),
        end_time=v.parse_int(f.get("end_time"), "end_time"),
        run_name=f.get("run_name"),
    )
    return {"run_info": serialize.run_info(run)}


def run_delete(caller: Caller, f: Fields) -> dict:
    runs.run_set_lifecycle(run=_run(caller, f), deleted=True)
    return {}


def run_restore(caller: Caller, f: Fields) -> dict:
    runs.run_set_lifecycle(run=_run(caller, f), deleted=False)
    return {}


def run_log_metric(caller: Caller, f: Fields) -> dict:
    metric = {"key": f.required("key"), "value": f.get("value"), "timestamp": f.get("timestamp"), "step": f.get("step")}
    if metric["value"] is None:
        raise invalid("Missing value for required parameter 'value'.")
    runs.run_log_batch(run=_run_to_log(caller, f), metrics=[metric])
    return {}


def run_log_param(caller: Caller, f: Fields) -> dict:
    runs.run_log_batch(run=_run_to_log(caller, f), params=[{"key": f.required("key"), "value": f.get("value")}])
    return {}


def run_set_tag(caller: Caller, f: Fields) -> dict:
    runs.run_log_batch(run=_run_to_log(caller, f), tags=[{"key": f.required("key"), "value": f.get("value")}])
    return {}


def run_delete_tag(caller: Caller, f: Fields) -> dict:
    runs.run_delete_tag(run=_run(caller, f), key=f.required("key"))
    return {}


def run_log_batch(caller: Caller, f: Fields) -> dict:
    run = _run_to_log(caller, f)
    runs.run_log_batch(run=run, metrics=f.list("metrics"), params=f.list("params"), tags=f.list("tags"))
    return {}


def run_log_inputs(caller: Caller, f: Fields) -> dict:
    """Datasets land in the data layer's tables, like cellar.dataset's (cellar_server/data)."""
    from cellar_server.core.exceptions import ServiceError
    from cellar_server.data.datasets import mlflow_inputs_record  # data depends on tracking, not back

    run = _run_to_log(caller, f)
    try:
        mlflow_inputs_record(team=caller.team, run=run, datasets=f.list("datasets"))
    except ServiceError as exc:
        raise invalid(exc.message) from None
    return {}


def run_search(caller: Caller, f: Fields) -> dict:
    page = selectors.run_search(
        team=caller.team,
        experiment_ids=f.list("experiment_ids"),
        filter_string=f.get("filter") or "",
        order_by=f.list("order_by"),
        view_type=f.get("run_view_type"),
        max_results=f.get("max_results"),
        page_token=f.get("page_token"),
    )
    numbers = page.experiment_numbers
    payload = {"runs": [serialize.run_row(row, numbers[row[3]], page.data[row[0]]) for row in page.runs]}
    if page.next_page_token:
        payload["next_page_token"] = page.next_page_token
    return payload


def metric_history(caller: Caller, f: Fields) -> HttpResponse:
    key = f.required("metric_key")
    points, token = selectors.metric_history(
        run=_run(caller, f), key=key, page_token=f.get("page_token"), max_results=f.get("max_results")
    )
    return HttpResponse(serialize.history_json(key, points, token), content_type="application/json")


def metric_history_bulk_interval(caller: Caller, f: Fields) -> dict:
    run_ids = f.list("run_ids")
    if not run_ids or len(run_ids) > 100:
        raise invalid("GetMetricHistoryBulkInterval takes 1 to 100 run_ids.")
    run_list = [runs.run_get(team=caller.team, run_id=r) for r in run_ids]
    max_results = v.parse_int(f.get("max_results"), "max_results", default=320)
    rows = selectors.metric_history_bulk(
        runs=run_list,
        key=f.required("metric_key"),
        start_step=v.parse_int(f.get("start_step"), "start_step"),
        end_step=v.parse_int(f.get("end_step"), "end_step"),
        max_results=max_results * len(run_list),
    )
    return {"metrics": [{**serialize.metric(*row[1:]), "run_id": row[0]} for row in rows]}


def artifacts_list(caller: Caller, f: Fields) -> dict:
    run = _run(caller, f)
    root = run.artifact_uri.removeprefix("mlflow-artifacts:/")
    relative = v.normalize_artifact_path(f.get("path") or "")
    entries = artifact_list(team=caller.team, directory=join(root, relative))
    files = [
        {"path": join(relative, e.path), "is_dir": e.is_dir, **({"file_size": e.file_size} if not e.is_dir else {})}
        for e in entries
    ]
    return {"root_uri": run.artifact_uri, "files": files}


def run_log_outputs(caller: Caller, f: Fields) -> dict:
    run = _run(caller, f)
    for output in f.list("models"):
        with team_scope(caller.team.id):
            updated = LoggedModel.objects.filter(model_id=output.get("model_id")).update(
                output_run=run, output_step=v.parse_int(output.get("step"), "step", default=0)
            )
        if not updated:
            raise invalid(f"Logged model '{output.get('model_id')}' does not exist.")
    return {}
