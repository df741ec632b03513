"""Registry services on PostgreSQL: versions from run artifacts, aliases, guards, stages, the gate."""

from __future__ import annotations

import pytest

from cellar.artifacts import blob_key, store_from_url
from cellar_server.core.scoping import team_scope
from cellar_server.registry import guards, selectors, services
from cellar_server.registry.errors import RegistryError
from cellar_server.registry.models import AliasMove, ModelVersion
from cellar_server.registry.register import version_register
from cellar_server.teams.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_version_from_a_run_snapshots_files_flavor_signature_and_metrics(team, actor, logged_run, settings) -> None:
    run = logged_run(metrics={"auc": 0.81}, params={"C": 1.0})
    model = services.model_create(team=team, actor=actor, name="churn")
    version = services.version_create(team=team, actor=actor, model=model, source=f"runs:/{run.run_uuid}/model")
    assert version.version == 1 and version.flavor == "sklearn"
    assert set(version.files) >= {"MLmodel", "model.pkl", "requirements.txt"}
    assert version.signature["inputs"].startswith('[{"type": "double", "name": "a"')
    assert version.metrics == {"auc": 0.81} and version.params == {"C": "1.0"}
    assert version.run_id == run.pk and version.run_uuid == run.run_uuid
    # The blobs the manifest names are where serve reads them.
    manifest = selectors.model_version_manifest(team=team, version_id=str(version.pk))
    store = store_from_url(settings.ARTIFACT_STORE_URL)
    assert all(store.exists(blob_key(team.slug, sha)) for sha in manifest["files"].values())
    assert manifest["model"] == "churn" and manifest["version"] == 1 and manifest["id"] == str(version.pk)


def test_second_version_numbers_up_and_copy_by_reference(team, actor, logged_run) -> None:
    model = services.model_create(team=team, actor=actor, name="churn")
    first = services.version_create(team=team, actor=actor, model=model, source=f"runs:/{logged_run().run_uuid}/model")
    second = services.version_create(team=team, actor=actor, model=model, source="models:/churn/1")
    assert second.version == 2 and second.files == first.files
    assert second.artifact_path == first.artifact_path and second.flavor == "sklearn"


@pytest.mark.parametrize(
    "source, code",
    [
        ("s3://bucket/model", "invalid"),
        ("runs:/" + "0" * 32 + "/model", "invalid"),
        ("mlflow-artifacts:/nothing", "no_model_files"),
    ],
    ids=["foreign-scheme", "unknown-run", "empty-path"],
)
def test_bad_sources_are_refused_without_a_record(team, actor, source, code) -> None:
    model = services.model_create(team=team, actor=actor, name="churn")
    with pytest.raises(RegistryError) as err:
        services.version_create(team=team, actor=actor, model=model, source=source)
    assert err.value.code == code
    with team_scope(team.id):
        assert not ModelVersion.objects.exists()


def test_duplicate_name_and_bad_alias_names(team, actor) -> None:
    model = services.model_create(team=team, actor=actor, name="churn")
    with pytest.raises(RegistryError, match="already exists"):
        services.model_create(team=team, actor=actor, name="churn")
    for bad in ("latest", "v3", "has space", ""):
        with pytest.raises(RegistryError) as err:
            services.model_alias_set(team=team, actor=actor, model=model, alias=bad, version=1)
        assert err.value.code == "invalid"


def test_alias_moves_are_recorded_and_audited(team, actor, logged_run) -> None:
    model = services.model_create(team=team, actor=actor, name="churn")
    for _ in range(2):
        services.version_create(team=team, actor=actor, model=model, source=f"runs:/{logged_run().run_uuid}/model")
    services.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=1)
    services.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=2, reason="better auc")
    assert selectors.model_version_get(team=team, name="churn", alias="champion").version == 2
    moves = selectors.alias_moves(team=team, model=model)
    assert [(m.from_version, m.to_version, m.reason) for m in moves] == [(1, 2, "better auc"), (None, 1, "")]
    with team_scope(team.id):
        verbs = list(AuditEvent.objects.filter(verb="model.alias.set").values_list("details__to", flat=True))
    assert sorted(verbs) == [1, 2]
    services.model_alias_delete(team=team, actor=actor, model=model, alias="champion")
    with pytest.raises(RegistryError):
        selectors.model_version_get(team=team, name="churn", alias="champion")


def test_a_guard_freezes_an_alias_with_a_conflict(team, actor, logged_run) -> None:
    model = services.model_create(team=team, actor=actor, name="churn")
    for _ in range(2):
        services.version_create(team=team, actor=actor, model=model, source=f"runs:/{logged_run().run_uuid}/model")
    services.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=1)
    calls = []

    def freeze(team_, model_, alias, new_version):
        calls.append((alias, getattr(new_version, "version", None)))
        return "A/B test 'exp-1' is running" if alias == "champion" else None

    guards.register_alias_guard(freeze)
    with pytest.raises(RegistryError) as err:
        services.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=2)
    assert err.value.code == "alias_frozen" and err.value.status_code == 409 and "exp-1" in err.value.message
    with pytest.raises(RegistryError):
        services.model_alias_delete(team=team, actor=actor, model=model, alias="champion")
    services.model_alias_set(team=team, actor=actor, model=model, alias="challenger", version=2)  # not frozen
    services.model_alias_set(team=team, actor=actor, model=model, alias="champion", version=2, bypass_guards=True)
    assert ("champion", 2) in calls and ("champion", None) in calls
    assert selectors.alias_map(team=team, model=model) == {"champion": 2, "challenger": 2}


def test_stage_transition_archives_existing(team, actor, logged_run) -> None:
    model = services.model_create(team=team, actor=actor, name="churn")
    v1, v2 = (
        services.version_create(team=team, actor=actor, model=model, source=f"runs:/{logged_run().run_uuid}/model")
        for _ in range(2)
    )
    services.version_stage_transition(team=team, actor=actor, version=v1, stage="production")
    services.version_stage_transition(team=team, actor=actor, version=v2, stage="Production", archive_existing=True)
    v1.refresh_from_db()
    assert (v1.stage, v2.stage) == ("Archived", "Production")
    with pytest.raises(RegistryError, match="Value must be one of"):
        services.version_stage_transition(team=team, actor=actor, version=v1, stage="Prod")


@pytest.mark.parametrize(
    "new_auc, moved", [(0.9, True), (0.7, False), (0.8, True)], ids=["better", "worse", "equal-passes"]
)
def test_gate_against_the_champion(team, actor, logged_run, new_auc, moved) -> None:
    version_register(
        team=team,
        actor=actor,
        name="churn",
        source=f"runs:/{logged_run(metrics={'auc': 0.8}).run_uuid}/model",
        alias="champion",
        gate="auc",
    )
    new_run = logged_run(metrics={"auc": new_auc})
    version, outcome = version_register(
        team=team, actor=actor, name="churn", source=f"runs:/{new_run.run_uuid}/model", alias="champion", gate="auc"
    )
    assert version.version == 2  # registered either way
    assert outcome["alias_moved"] is moved and outcome["gate"]["passed"] is moved
    champion = selectors.model_version_get(team=team, name="churn", alias="champion").version
    assert champion == (2 if moved else 1)
    if not moved:
        assert "did not pass the gate" in outcome["message"] and "stays on v1" in outcome["message"]


def test_gate_min_mode_and_missing_metric(team, actor, logged_run) -> None:
    gate = {"metric": "rmse", "mode": "min", "min_delta": 0.05}
    version_register(
        team=team,
        actor=actor,
        name="m",
        source=f"runs:/{logged_run(metrics={'rmse': 1.0}).run_uuid}/model",
        alias="champion",
        gate=gate,
    )
    _, small = version_register(
        team=team,
        actor=actor,
        name="m",
        source=f"runs:/{logged_run(metrics={'rmse': 0.98}).run_uuid}/model",
        alias="champion",
        gate=gate,
    )
    assert small["alias_moved"] is False  # better, but not by min_delta
    _, none = version_register(
        team=team, actor=actor, name="m", source=f"runs:/{logged_run().run_uuid}/model", alias="champion", gate=gate
    )
    assert none["alias_moved"] is False and "has no metric 'rmse'" in none["message"]
    _, big = version_register(
        team=team,
        actor=actor,
        name="m",
        source=f"runs:/{logged_run().run_uuid}/model",
        metrics={"rmse": 0.5},
        alias="champion",
        gate=gate,
    )
    assert big["alias_moved"] is True
    with team_scope(team.id):
        assert AliasMove.objects.filter(alias="champion").count() == 2


def test_other_teams_do_not_see_versions(team, other_team, actor, logged_run) -> None:
    model = services.model_create(team=team, actor=actor, name="churn")
    version = services.version_create(
        team=team, actor=actor, model=model, source=f"runs:/{logged_run().run_uuid}/model"
    )
    assert selectors.model_version_manifest(team=other_team, version_id=version.pk) is None
    with pytest.raises(RegistryError) as err:
        selectors.model_version_get(team=other_team, name="churn", version=1)
    assert err.value.code == "not_found"


def test_a_frozen_alias_still_registers_the_version(team, actor, logged_run) -> None:
    first = logged_run(metrics={"auc": 0.8})
    version_register(team=team, actor=actor, name="churn", source=f"runs:/{first.run_uuid}/model", alias="champion")
    guards.register_alias_guard(lambda t, m, alias, v: "A/B test 'x' is running" if alias == "champion" else None)
    better = logged_run(metrics={"auc": 0.9})
    version, outcome = version_register(
        team=team, actor=actor, name="churn", source=f"runs:/{better.run_uuid}/model", alias="champion", gate="auc"
    )
    assert version.version == 2 and outcome["alias_moved"] is False
    assert "A/B test 'x' is running" in outcome["message"] and outcome["message"].startswith("v2 is registered but")
    assert selectors.model_version_get(team=team, name="churn", alias="champion").version == 1


def test_dot_dot_segments_are_refused(team, actor, logged_run) -> None:
    run = logged_run()
    model = services.model_create(team=team, actor=actor, name="churn")
    with pytest.raises(RegistryError, match=r"'\.\.' segments"):
        services.version_create(team=team, actor=actor, model=model, source=f"runs:/{run.run_uuid}/x/../model")
