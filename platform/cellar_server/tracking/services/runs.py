"""Runs and everything logged to them: params (write-once), tags, metric history.

`run_log_batch` is the one write path: log-metric, log-parameter and set-tag are
batches of one. A batch is validated whole before anything is written, then
written in one transaction, so it lands entirely or not at all, and writing it
again changes nothing (metric points are unique, params write-once, tags last-wins).
"""

from __future__ import annotations

import random
import uuid

from django.db import connection, transaction

from cellar_server.core.scoping import team_scope
from cellar_server.teams.models import Team
from cellar_server.tracking import curves
from cellar_server.tracking import validation as v
from cellar_server.tracking.errors import invalid, missing
from cellar_server.tracking.models import (
    ACTIVE,
    DELETED,
    RUN_STATUSES,
    SOURCE_TYPES,
    Experiment,
    Param,
    Run,
    RunTag,
)
from cellar_server.tracking.search import documents
from cellar_server.tracking.services import bulk
from cellar_server.tracking.services.experiments import now_ms

_ADJECTIVES = (
    "amber bold brave bright calm clever crisp daring eager gentle keen lively loyal mellow merry noble "
    "polite quick quiet rare serene sharp shy silent smart snappy steady sunny swift tidy vivid warm wise".split()
)
_NOUNS = (
    "ant bat bear bee bird carp cat crab crow deer dove duck eel elk finch fox frog goat hare hawk "
    "koi lark lynx mole moth newt owl panda quail ram seal shark sloth snail swan toad wolf wren".split()
)

# Tags the MLflow client sets that also fill Run columns.
SOURCE_TYPE_TAG = "mlflow.source.type"
SOURCE_NAME_TAG = "mlflow.source.name"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"


def _generated_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"


def run_get(*, team: Team, run_id: str | None) -> Run:
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'.")
    with team_scope(team.id):
        run = Run.objects.select_related("experiment").filter(run_uuid=run_id).first()
    if run is None:
        raise missing(f"Run with id={run_id} not found")
    return run


# Only what logging needs: a thousand-point batch should not pay for loading a whole run.
_LOGGING_FIELDS = ("id", "team_id", "run_uuid", "experiment_id", "lifecycle_stage")
_RUN_FOR_LOGGING_SQL = f"SELECT {', '.join(_LOGGING_FIELDS)} FROM tracking_run WHERE run_uuid = %s AND team_id = %s"


def run_for_logging(*, team: Team, run_id: str | None) -> Run:
    """The run a log call writes to, with only the fields run_log_batch reads (the rest load on
    access): one plain query, scoped to the team, for the hottest path of the API."""
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'.")
    with connection.cursor() as cursor:
        cursor.execute(_RUN_FOR_LOGGING_SQL, [run_id, team.id])
        row = cursor.fetchone()
    if row is None:
        raise missing(f"Run with id={run_id} not found")
    return Run.from_db(connection.alias, _LOGGING_FIELDS, row)


def _source_type(tags: dict[str, str]) -> str:
    raw = tags.get(SOURCE_TYPE_TAG, "").lower()
    if raw in SOURCE_TYPES:
        return raw
    return {"local": "script", "job": "pipeline", "project": "script"}.get(raw, "unknown")


@transaction.atomic
def run_create(
    *,
    team: Team,
    experiment: Experiment,
    user=None,
    user_name: str = "",
    run_name: str = "",
    start_time: int | None = None,
    tags: list[dict] | None = None,
) -> Run:
    if experiment.lifecycle_stage != ACTIVE:
        raise invalid(f"The experiment {experiment.number} must be in the 'active' state to create runs.")
    clean = _clean_tags(tags or [])
    tag_map = dict(clean)
    run_name = run_name or tag_map.get(RUN_NAME_TAG) or _generated_name()
    tag_map[RUN_NAME_TAG] = run_name
    run_uuid = uuid.uuid4().hex
    run = Run.all_teams.create(
        team=team,
        run_uuid=run_uuid,
        experiment=experiment,
        name=run_name[:250],
        user=user,
        user_name=user_name or tag_map.get(USER_TAG, "") or (user.get_username() if user is not None else ""),
        status="RUNNING",
        start_time=start_time if start_time is not None else now_ms(),
        artifact_uri=f"mlflow-artifacts:/{experiment.number}/{run_uuid}/artifacts",
        source_type=_source_type(tag_map),
        source_name=tag_map.get(SOURCE_NAME_TAG, "")[:500],
        code_version=tag_map.get(GIT_COMMIT_TAG, "")[:100],
    )
    RunTag.objects.bulk_create([RunTag(run=run, key=k, value=val) for k, val in tag_map.items()])
    documents.merge(run.pk, tags=tag_map)
    return run


@transaction.atomic
def run_update(*, run: Run, status: str | None = None, end_time: int | None = None, run_name: str | None = None) -> Run:
    fields = []
    if status:
        if status not in RUN_STATUSES:
            raise invalid(f"Invalid run status '{status}'; use one of {', '.join(RUN_STATUSES)}.")
        run.status = status
        fields.append("status")
    if end_time is not None:
        run.end_time = end_time
        fields.append("end_time")
    if run_name:
        run.name = run_name[:250]
        fields.append("name")
        RunTag.objects.update_or_create(run=run, key=RUN_NAME_TAG, defaults={"value": run.name})
    if fields:
        run.save(update_fields=fields)
    if run_name:
        documents.merge(run.pk, tags={RUN_NAME_TAG: run.name})
    return run


def run_set_lifecycle(*, run: Run, deleted: bool) -> Run:
    stage = DELETED if deleted else ACTIVE
    if run.lifecycle_stage != stage:
        run.lifecycle_stage = stage
        run.save(update_fields=["lifecycle_stage"])
    return run


# A cleaned metric point, in the column order of tracking_metric after run_id:
# (key, value, is_nan, step, timestamp). Plain tuples: a batch makes a thousand of them.
MetricRow = bulk.MetricRow


def _clean_tags(tags: list[dict]) -> list[tuple[str, str]]:
    return [
        (v.validate_key(t.get("key"), "tag"), v.validate_value(t.get("value"), "tag", v.MAX_TAG_VALUE_LENGTH))
        for t in tags
    ]


def _clean_metrics(metrics: list[dict]) -> list[MetricRow]:
    points = []
    keys: dict[object, str] = {}  # a batch repeats a few keys many times: validate each once
    for m in metrics:
        raw_key = m.get("key")
        key = keys.get(raw_key) if isinstance(raw_key, str) else None
        if key is None:
            key = keys[raw_key] = v.validate_key(raw_key, "metric")
        raw_value, timestamp, step = m.get("value"), m.get("timestamp"), m.get("step", 0)
        if type(raw_value) is float and raw_value == raw_value:  # the common case: a finite-or-inf double
            value, is_nan = raw_value, False
        else:
            value, is_nan = v.parse_metric_value(raw_value, key)
        if type(timestamp) is not int:
            timestamp = v.parse_int(timestamp, "timestamp", required=True)
        if type(step) is not int:
            step = v.parse_int(step, "step", default=0)
        points.append((key, value, is_nan, step, timestamp))
    return points


def _clean_params(params: list[dict]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for p in params:
        key = v.validate_key(p.get("key"), "param")
        value = v.validate_value(p.get("value"), "param", v.MAX_PARAM_VALUE_LENGTH)
        if key in clean and clean[key] != value:
            raise invalid(
                f"Duplicate parameter keys have been submitted: '{key}' with values '{clean[key]}' and "
                f"'{value}'. Please ensure the request contains only one param value per param key."
            )
        clean[key] = value
    return clean


def _check_batch_limits(metrics: list, params: list, tags: list) -> None:
    if len(metrics) > v.MAX_METRICS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {v.MAX_METRICS_PER_BATCH} metrics. "
            f"Got {len(metrics)} metrics. Please split up metrics across multiple requests and try again."
        )
    if len(params) > v.MAX_PARAMS_TAGS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {v.MAX_PARAMS_TAGS_PER_BATCH} params. "
            f"Got {len(params)} params. Please split up params across multiple requests and try again."
        )
    if len(tags) > v.MAX_PARAMS_TAGS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {v.MAX_PARAMS_TAGS_PER_BATCH} tags. "
            f"Got {len(tags)} tags. Please split up tags across multiple requests and try again."
        )
    total = len(metrics) + len(params) + len(tags)
    if total > v.MAX_ENTITIES_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {v.MAX_ENTITIES_PER_BATCH} total metrics, params "
            f"and tags. Got {total}. Please split up the request and try again."
        )


def run_log_batch(
    *, run: Run, metrics: list[dict] | None = None, params: list[dict] | None = None, tags: list[dict] | None = None
) -> None:
    metrics, params, tags = metrics or [], params or [], tags or []
    _check_batch_limits(metrics, params, tags)
    points = _clean_metrics(metrics)
    new_params = _clean_params(params)
    new_tags = dict(_clean_tags(tags))
    if run.lifecycle_stage != ACTIVE:
        raise invalid(f"The run {run.run_uuid} must be in the 'active' state. Current state is {run.lifecycle_stage}.")
    # Everything is prepared before the transaction: on SQLite the write lock is held only for SQL.
    run_pk = run.pk
    latest = _latest_per_key(points)
    summary_rows = curves.bucket_rows(
        run_pk, ((key, value, step) for key, value, is_nan, step, _ in points if not is_nan)
    )
    batch = (new_params, new_tags, points, latest, summary_rows)
    try:
        _write_batch(run, *batch, ignore_repeats=False)
    except bulk.RepeatedPoints:  # a retry of points already stored: write it all again, keeping those
        _write_batch(run, *batch, ignore_repeats=True)


def _write_batch(run: Run, params, tags, points, latest, summary_rows, *, ignore_repeats: bool) -> None:
    """One transaction: it lands entirely or not at all. Points first, so that a batch that repeats
    stored points (PostgreSQL refuses the plain insert) is found out before anything else is written."""
    with transaction.atomic():
        bulk.write_points(
            run.pk,
            points,
            latest,
            summary_rows,
            curves.UPSERT_BUCKETS,
            curves.ROW_TYPES,
            ignore_repeats=ignore_repeats,
            merge_documents=not (params or tags),  # then the points' statement is the last one
        )
        if params:
            _write_params(run, params)
        if tags:
            RunTag.objects.bulk_create(
                [RunTag(run=run, key=k, value=val) for k, val in tags.items()],
                update_conflicts=True,
                unique_fields=["run", "key"],
                update_fields=["value"],
            )
            _sync_run_columns(run, tags)
        if params or tags:
            documents.merge(run.pk, params=params, tags=tags, metric_keys=[point[0] for point in latest])


def _write_params(run: Run, new_params: dict[str, str]) -> None:
    Param.objects.bulk_create(
        [Param(run=run, key=k, value=val) for k, val in new_params.items()], ignore_conflicts=True
    )
    stored = dict(Param.objects.filter(run=run, key__in=list(new_params)).values_list("key", "value"))
    for key, value in new_params.items():
        if stored.get(key) != value:
            raise invalid(
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{stored.get(key)}' for run ID='{run.run_uuid}'. Attempted logging new value '{value}'."
            )


def _sync_run_columns(run: Run, tags: dict[str, str]) -> None:
    fields = {}
    if RUN_NAME_TAG in tags:
        fields["name"] = tags[RUN_NAME_TAG][:250]
    if GIT_COMMIT_TAG in tags:
        fields["code_version"] = tags[GIT_COMMIT_TAG][:100]
    if SOURCE_NAME_TAG in tags:
        fields["source_name"] = tags[SOURCE_NAME_TAG][:500]
    if SOURCE_TYPE_TAG in tags:
        fields["source_type"] = _source_type(tags)
    if fields:
        Run.all_teams.filter(pk=run.pk).update(**fields)
        for name, value in fields.items():
            setattr(run, name, value)


def _latest_per_key(points: list[MetricRow]) -> list[MetricRow]:
    """Per key, the point with the highest (step, timestamp, value): MLflow's "latest"."""
    best: dict[str, tuple] = {}
    for key, value, is_nan, step, timestamp in points:
        rank = (step, timestamp, value)
        current = best.get(key)
        if current is None or rank > current[0]:
            best[key] = (rank, (key, value, is_nan, step, timestamp))
    return [point for _, point in best.values()]


def run_delete_tag(*, run: Run, key: str) -> None:
    if run.lifecycle_stage != ACTIVE:
        raise invalid(f"The run {run.run_uuid} must be in the 'active' state. Current state is {run.lifecycle_stage}.")
    with transaction.atomic():
        deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
        if deleted:
            documents.merge(run.pk, deleted_tags=[key])
    if not deleted:
        raise missing(f"No tag with name: {key} in run with id {run.run_uuid}")
