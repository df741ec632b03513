"""Experiments: create, rename, delete/restore, tags; the per-team default experiment "0"."""

from __future__ import annotations

import time

from django.db import IntegrityError, transaction
from django.db.models import Max

from cellar_server.core.scoping import team_scope
from cellar_server.teams.models import Team
from cellar_server.tracking import validation as v
from cellar_server.tracking.errors import RESOURCE_ALREADY_EXISTS, TrackingError, invalid, missing
from cellar_server.tracking.models import ACTIVE, DELETED, Experiment, ExperimentTag

DEFAULT_EXPERIMENT_NAME = "Default"


def now_ms() -> int:
    return int(time.time() * 1000)


def artifact_location(number: int) -> str:
    return f"mlflow-artifacts:/{number}"


def experiment_ensure_default(*, team: Team) -> Experiment:
    """Experiment "0" exists in every team; the MLflow client logs there when none is set."""
    with team_scope(team.id):
        existing = Experiment.objects.filter(number=0).first()
    if existing is not None:
        return existing
    now = now_ms()
    try:
        with transaction.atomic():
            return Experiment.all_teams.create(
                team=team,
                number=0,
                name=DEFAULT_EXPERIMENT_NAME,
                artifact_location=artifact_location(0),
                creation_time=now,
                last_update_time=now,
            )
    except IntegrityError:  # created concurrently
        return Experiment.all_teams.get(team=team, number=0)


def experiment_get(*, team: Team, experiment_id: str | int) -> Experiment:
    number = v.parse_int(experiment_id, "experiment_id", required=True)
    if number == 0:
        return experiment_ensure_default(team=team)
    with team_scope(team.id):
        experiment = Experiment.objects.filter(number=number).first()
    if experiment is None:
        raise missing(f"No Experiment with id={experiment_id} exists")
    return experiment


def experiment_get_by_name(*, team: Team, name: str) -> Experiment:
    if name == DEFAULT_EXPERIMENT_NAME:
        experiment_ensure_default(team=team)
    with team_scope(team.id):
        experiment = Experiment.objects.filter(name=name).first()
    if experiment is None:
        raise missing(f"Could not find experiment with name '{name}'")
    return experiment


def _validate_name(name: str | None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid("Invalid experiment name: the name must be a non-empty string.")
    if len(name) > v.MAX_EXPERIMENT_NAME_LENGTH:
        raise invalid(f"Experiment name is {len(name)} characters; the limit is {v.MAX_EXPERIMENT_NAME_LENGTH}.")
    return name


@transaction.atomic
def experiment_create(*, team: Team, name: str, tags: list[dict] | None = None) -> Experiment:
    name = _validate_name(name)
    experiment_ensure_default(team=team)
    clean_tags = [
        (
            v.validate_key(t.get("key"), "tag"),
            v.validate_value(t.get("value"), "tag", v.MAX_EXPERIMENT_TAG_VALUE_LENGTH),
        )
        for t in tags or []
    ]
    # Lock the team row: experiment numbers are allocated per team, one writer at a time.
    Team.objects.select_for_update().filter(pk=team.pk).values_list("pk", flat=True).first()
    with team_scope(team.id):
        if Experiment.objects.filter(name=name).exists():
            raise TrackingError(RESOURCE_ALREADY_EXISTS, f"Experiment '{name}' already exists.")
        number = (Experiment.objects.aggregate(top=Max("number"))["top"] or 0) + 1
    now = now_ms()
    experiment = Experiment.all_teams.create(
        team=team,
        number=number,
        name=name,
        artifact_location=artifact_location(number),
        creation_time=now,
        last_update_time=now,
    )
    ExperimentTag.objects.bulk_create([ExperimentTag(experiment=experiment, key=k, value=val) for k, val in clean_tags])
    return experiment


@transaction.atomic
def experiment_rename(*, experiment: Experiment, new_name: str) -> Experiment:
    new_name = _validate_name(new_name)
    if new_name == experiment.name:
        return experiment
    with team_scope(experiment.team_id):
        if Experiment.objects.filter(name=new_name).exists():
            raise TrackingError(RESOURCE_ALREADY_EXISTS, f"Experiment '{new_name}' already exists.")
    experiment.name = new_name
    experiment.last_update_time = now_ms()
    experiment.save(update_fields=["name", "last_update_time"])
    return experiment


def experiment_set_lifecycle(*, experiment: Experiment, deleted: bool) -> Experiment:
    if deleted and experiment.number == 0:
        raise invalid("Cannot delete the default experiment '0'. This is a reserved experiment.")
    stage = DELETED if deleted else ACTIVE
    if experiment.lifecycle_stage != stage:
        experiment.lifecycle_stage = stage
        experiment.last_update_time = now_ms()
        experiment.save(update_fields=["lifecycle_stage", "last_update_time"])
    return experiment


def experiment_tag_set(*, experiment: Experiment, key: str, value: str) -> None:
    key = v.validate_key(key, "tag")
    value = v.validate_value(value, "tag", v.MAX_EXPERIMENT_TAG_VALUE_LENGTH)
    ExperimentTag.objects.update_or_create(experiment=experiment, key=key, defaults={"value": value})


def experiment_tag_delete(*, experiment: Experiment, key: str) -> None:
    deleted, _ = ExperimentTag.objects.filter(experiment=experiment, key=key).delete()
    if not deleted:
        raise missing(f"No tag with name: {key} in experiment with id {experiment.number}")
