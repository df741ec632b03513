"""Versions are content-addressed, the production alias moves and rolls back, everything is audited,
and a refused promote leaves nothing behind."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from cellar.pipelines.compiler import compile_notebook
from cellar.pipelines.spec import Environment
from cellar_server.core.exceptions import ServiceError
from cellar_server.core.scoping import team_scope
from cellar_server.pipelines import services
from cellar_server.pipelines.errors import PipelineError
from cellar_server.pipelines.models import Pipeline, PipelineVersion, ProductionMove
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import AuditEvent
from cellar_server.teams.roles import scopes_for
from tests.pipelines.conftest import churn_notebook, code_cell, make_spec, notebook

pytestmark = pytest.mark.django_db

ADMIN_SCOPES = scopes_for("admin")
EDITOR_SCOPES = scopes_for("editor")


@pytest.fixture
def admin(members):
    return Actor(user=members["admin"])


def create(team, actor, nb=None, *, name="churn", scopes=ADMIN_SCOPES, **kwargs):
    return services.pipeline_version_create(
        team=team, pipeline_name=name, notebook=nb or churn_notebook(), actor=actor, scopes=scopes, **kwargs
    )


def verbs(team) -> list[str]:
    return list(AuditEvent.all_teams.filter(team=team).order_by("id").values_list("verb", flat=True))


def test_same_content_gives_the_same_version(team, admin):
    first = create(team, admin)
    again = create(team, admin)
    assert first.created and not again.created
    assert again.version.pk == first.version.pk
    assert PipelineVersion.all_teams.count() == 1
    assert first.version.number == 1 and len(first.version.hash) == 64
    # The id is the spec's content hash, as the SDK computes it for the same notebook and environment.
    local = compile_notebook(churn_notebook(), environment=Environment(**_env(first.version.spec)))
    assert first.version.hash == local.spec.content_hash()
    assert verbs(team) == ["pipeline.create", "pipeline.version_create"]


def _env(spec: dict) -> dict:
    return {"python": spec["python"], "lock": spec["environment"], "modules": spec["modules"]}


def test_changed_content_gives_the_next_number(team, admin):
    v1 = create(team, admin).version
    v2 = create(team, admin, churn_notebook(threshold=0.7)).version
    v3 = create(team, admin, churn_notebook(train_extra="\nscore = round(score, 3)")).version
    assert (v1.number, v2.number, v3.number) == (1, 2, 3)
    assert len({v1.hash, v2.hash, v3.hash}) == 3
    assert v2.spec["parameters"][0] == {"name": "threshold", "default": 0.7, "type": "float"}
    assert verbs(team).count("pipeline.version_create") == 3


def test_moving_a_markdown_cell_or_renaming_the_notebook_keeps_the_version(team, admin):
    nb = churn_notebook()
    first = create(team, admin, nb, notebook_name="a.ipynb")
    nb["cells"].append({"id": "note", "cell_type": "markdown", "metadata": {}, "source": "more notes"})
    again = create(team, admin, nb, notebook_name="b.ipynb")
    assert again.version.pk == first.version.pk
    assert again.version.notebook == "a.ipynb"  # provenance of the first promote stays


def test_the_same_hash_is_unique_per_pipeline_and_team(team, other_team, admin, outsider):
    spec = make_spec()
    one = services.pipeline_version_save(team=team, pipeline_name="a", spec=spec, actor=admin)
    two = services.pipeline_version_save(team=team, pipeline_name="b", spec=spec, actor=admin)
    three = services.pipeline_version_save(team=other_team, pipeline_name="a", spec=spec, actor=Actor(user=outsider))
    assert one.version.hash == two.version.hash == three.version.hash
    assert len({one.version.pk, two.version.pk, three.version.pk}) == 3
    with pytest.raises(IntegrityError):
        PipelineVersion.all_teams.create(
            team=team, pipeline=one.version.pipeline, hash=spec.content_hash(), number=9, spec={}
        )


def test_the_environment_is_part_of_the_id(team, admin):
    a = services.pipeline_version_save(
        team=team, pipeline_name="p", spec=make_spec(lock={"numpy": "2.0.0"}), actor=admin
    )
    b = services.pipeline_version_save(
        team=team, pipeline_name="p", spec=make_spec(lock={"numpy": "2.1.0"}), actor=admin
    )
    c = services.pipeline_version_save(team=team, pipeline_name="p", spec=make_spec(python="3.12"), actor=admin)
    assert len({a.version.hash, b.version.hash, c.version.hash}) == 3


def test_a_compile_error_names_the_cell_and_writes_nothing(team, admin):
    nb = notebook(code_cell("x = 1", "step:a"), code_cell("y = undefined_thing + x", "step:b"))
    with pytest.raises(PipelineError) as caught:
        create(team, admin, nb)
    error = caught.value
    assert error.code == "compile_error" and error.status_code == 400
    [problem] = error.detail["problems"]
    assert problem["code"] == "undefined_name" and problem["cell"] == 1 and problem["step"] == "b"
    assert "cell 1" in error.message and "undefined_thing" in error.message
    assert not Pipeline.all_teams.exists() and verbs(team) == []


def test_a_package_the_pool_lacks_is_an_error_naming_it(team, admin):
    nb = notebook(code_cell("import surely_not_installed_pkg\nx = 1", "step:a"))
    with pytest.raises(PipelineError) as caught:
        create(team, admin, nb)
    assert caught.value.code == "missing_package"
    [problem] = caught.value.detail["problems"]
    assert problem["code"] == "missing_package" and problem["step"] == "a" and problem["cell"] == 0
    assert "surely_not_installed_pkg" in problem["message"] and "pool 'cpu'" in problem["message"]
    assert not Pipeline.all_teams.exists()


def test_version_differences_are_warnings(team, admin):
    nb = notebook(code_cell("import numpy\nx = numpy.zeros(3)", "step:a"))
    env = Environment(python="3.99", lock={"numpy": "0.0.1"}, modules={"numpy": "numpy"})
    outcome = create(team, admin, nb, environment=env)
    messages = [w["message"] for w in outcome.warnings]
    assert any("'numpy' is 0.0.1 where the pipeline was promoted" in m for m in messages), messages
    assert any("Python 3.99" in m for m in messages), messages
    assert outcome.version.warnings == outcome.warnings
    assert outcome.version.spec["environment"] == {"numpy": "0.0.1"}


def test_without_an_environment_the_target_pools_is_the_lock(team, admin):
    from cellar.pipelines.environment import current_environment

    nb = notebook(code_cell("import numpy\nx = numpy.zeros(3)", "step:a"))
    spec = create(team, admin, nb).version.spec
    expected = current_environment(["numpy"])
    assert spec["environment"] == expected.lock and spec["modules"] == {"numpy": "numpy"}


def test_an_unknown_pool_is_a_compile_error(team, admin):
    nb = notebook(code_cell("x = 1", "step:a", "pool:tpu"))
    with pytest.raises(PipelineError) as caught:
        create(team, admin, nb)
    assert caught.value.detail["problems"][0]["code"] == "unknown_pool"


def test_a_gpu_step_needs_a_configured_gpu_pool(team, admin, settings):
    nb = notebook(code_cell("x = 1", "step:a", "gpu:1"))
    settings.CELLAR_POOLS = '{"cpu": {"cpu": 4}}'  # no gpu pool (the compute app's defaults have one)
    with pytest.raises(PipelineError):
        create(team, admin, nb)
    settings.CELLAR_POOLS = '{"cpu": {"cpu": 4}, "gpu": {"cpu": 8, "memory": "64Gi", "gpu": 2}}'
    version = create(team, admin, nb).version
    assert version.spec["steps"][0]["resources"]["pool"] == "gpu"


@pytest.mark.parametrize("name", ["", "Churn", "-x", "a/b", "compile", "x" * 101, "sp ace"])
def test_pipeline_names_are_slug_like(team, admin, name):
    with pytest.raises(ServiceError) as caught:
        create(team, admin, name=name)
    assert caught.value.code == "invalid_pipeline_name"


def test_production_on_create_needs_the_promote_scope_and_writes_nothing_without_it(team, admin):
    with pytest.raises(ServiceError) as caught:
        create(team, admin, production=True, scopes=EDITOR_SCOPES)
    assert caught.value.status_code == 403 and "pipelines:promote" in caught.value.message
    assert not Pipeline.all_teams.exists()
    outcome = create(team, admin, production=True)
    assert outcome.production_move is not None
    assert Pipeline.all_teams.get().production_id == outcome.version.pk


def test_promote_moves_the_alias_and_records_history(team, admin):
    v1 = create(team, admin).version
    v2 = create(team, admin, churn_notebook(threshold=0.9)).version
    pipeline = v1.pipeline
    move = services.pipeline_production_move(team=team, pipeline=pipeline, version=v1, actor=admin)
    assert move.from_version is None and move.to_version == v1 and move.kind == "promote"
    assert services.pipeline_production_move(team=team, pipeline=pipeline, version=v1, actor=admin) is None
    services.pipeline_production_move(team=team, pipeline=pipeline, version=v2, actor=admin)
    pipeline.refresh_from_db()
    assert pipeline.production == v2
    assert ProductionMove.all_teams.count() == 2
    event = AuditEvent.all_teams.filter(verb="pipeline.production_promote").order_by("id").last()
    assert event.details == {
        "pipeline": "churn",
        "from": {"number": 1, "hash": v1.hash},
        "to": {"number": 2, "hash": v2.hash},
    }
    assert event.actor_name == "admin-user"


def test_rollback_walks_back_through_the_promotes(team, admin):
    versions = [create(team, admin, churn_notebook(threshold=t)).version for t in (0.1, 0.2, 0.3)]
    pipeline = versions[0].pipeline
    with pytest.raises(ServiceError) as caught:
        services.pipeline_production_rollback(team=team, pipeline=pipeline, actor=admin)
    assert caught.value.code == "nothing_to_roll_back" and caught.value.status_code == 409
    for version in versions:
        services.pipeline_production_move(team=team, pipeline=pipeline, version=version, actor=admin)
    back = services.pipeline_production_rollback(team=team, pipeline=pipeline, actor=admin)
    assert (back.from_version, back.to_version, back.kind) == (versions[2], versions[1], "rollback")
    back = services.pipeline_production_rollback(team=team, pipeline=pipeline, actor=admin)
    assert back.to_version == versions[0]
    with pytest.raises(ServiceError):
        services.pipeline_production_rollback(team=team, pipeline=pipeline, actor=admin)
    # A new promote after rolling back: the next rollback returns to where it was promoted from.
    services.pipeline_production_move(team=team, pipeline=pipeline, version=versions[2], actor=admin)
    back = services.pipeline_production_rollback(team=team, pipeline=pipeline, actor=admin)
    assert back.to_version == versions[0]
    pipeline.refresh_from_db()
    assert pipeline.production == versions[0]
    assert verbs(team).count("pipeline.production_rollback") == 3
    assert verbs(team).count("pipeline.production_promote") == 4


def test_a_version_of_another_pipeline_cannot_become_production(team, admin):
    a = create(team, admin, name="a").version
    b = create(team, admin, name="b").version
    with pytest.raises(ServiceError) as caught:
        services.pipeline_production_move(team=team, pipeline=a.pipeline, version=b, actor=admin)
    assert caught.value.status_code == 404


def test_versions_are_scoped_to_their_team(team, other_team, admin):
    create(team, admin)
    with team_scope(other_team.id):
        assert not PipelineVersion.objects.exists() and not Pipeline.objects.exists()
    with team_scope(team.id):
        assert PipelineVersion.objects.count() == 1
