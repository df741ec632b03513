"""API shapes for pipelines: inputs (validated) and outputs (documented; built from plain dicts)."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers

from cellar.pipelines.notebook import parse_cell_selection
from cellar.pipelines.spec import Environment
from cellar_server.core.exceptions import ServiceError

MAX_CELLS = 10_000


def parse_cells(text: str | None) -> list[int] | None:
    """'0,2,5-9' -> [0, 2, 5, 6, 7, 8, 9] (as `--cells` takes them); '' or None -> None (every cell)."""
    if text is None or not str(text).strip():
        return None
    try:
        cells = parse_cell_selection(str(text))
    except ValueError as exc:
        message = f"'{text}' does not select cells ({exc}); write them like 0,2,5-9."
        raise ServiceError("invalid_cells", message) from None
    if len(cells) > MAX_CELLS:
        raise ServiceError("invalid_cells", f"At most {MAX_CELLS} cells can be selected.")
    return cells


def notebook_from_text(raw: bytes | str) -> dict[str, Any]:
    """The .ipynb JSON parsed; refuses anything that is not a JSON object."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServiceError("not_a_notebook", f"This is not a notebook: the file is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise ServiceError("not_a_notebook", "This is not a notebook: an .ipynb file holds a JSON object.")
    return data


# --- inputs -----------------------------------------------------------------------------------------------


class EnvironmentInput(serializers.Serializer):
    python = serializers.RegexField(r"^\d+\.\d+$", max_length=10, help_text='Python "major.minor", like "3.11".')
    lock = serializers.DictField(
        child=serializers.CharField(max_length=200), help_text="Every installed distribution: name -> version."
    )
    modules = serializers.DictField(
        child=serializers.CharField(max_length=200),
        required=False,
        default=dict,
        help_text="Top-level module the steps import -> the distribution that provides it.",
    )

    def to_environment(self) -> Environment:
        data = self.validated_data
        return Environment(python=data["python"], lock=dict(data["lock"]), modules=dict(data["modules"]))


class NotebookField(serializers.JSONField):
    """The notebook's JSON object (or its JSON text)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        data = super().to_internal_value(data)
        if isinstance(data, str | bytes):
            return notebook_from_text(data)
        if not isinstance(data, dict):
            raise serializers.ValidationError("Send the notebook's JSON object (the content of the .ipynb file).")
        return data


class KernelValueInput(serializers.Serializer):
    """What a live kernel found when it tried to serialize one variable."""

    ok = serializers.BooleanField()
    type = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    size = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)
    error = serializers.CharField(max_length=2000, required=False, allow_blank=True, allow_null=True, default=None)


class CompileInput(serializers.Serializer):
    notebook = NotebookField(help_text="The .ipynb file's JSON (nbformat 4).")
    cells = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        allow_null=True,
        max_length=MAX_CELLS,
        help_text="Indices of the selected cells, 0-based over all cells; absent = every cell.",
    )
    environment = EnvironmentInput(
        required=False, allow_null=True, help_text="The promoting interpreter's lock; absent = the target pool's."
    )
    kernel_values = serializers.DictField(
        child=KernelValueInput(),
        required=False,
        allow_null=True,
        help_text='From a live kernel: name -> {"ok", "type", "size", "error"}; checks that outputs serialize.',
    )
    notebook_name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class VersionCreateInput(CompileInput):
    production = serializers.BooleanField(
        required=False, default=False, help_text="Also move the production alias (needs pipelines:promote)."
    )
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", help_text="Used when the pipeline is new."
    )


class VersionUploadInput(serializers.Serializer):
    """The same as JSON, as a multipart form with the .ipynb file attached."""

    notebook = serializers.FileField(help_text="The .ipynb file.")
    cells = serializers.CharField(required=False, allow_blank=True, help_text="Like 0,2,5-9; absent = every cell.")
    environment = serializers.CharField(required=False, allow_blank=True, help_text="The environment object as JSON.")
    production = serializers.BooleanField(required=False, default=False)
    notebook_name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class ProductionMoveInput(serializers.Serializer):
    version = serializers.CharField(max_length=64, help_text="The version's number (3, v3), id or id prefix (8+).")


def environment_from(data: dict[str, Any] | None) -> Environment | None:
    if data is None:
        return None
    serializer = EnvironmentInput(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.to_environment()


# --- outputs ----------------------------------------------------------------------------------------------


class ForeachSerializer(serializers.Serializer):
    iterable = serializers.CharField()
    item = serializers.CharField()


class ResourcesSerializer(serializers.Serializer):
    pool = serializers.CharField()
    cpu = serializers.FloatField()
    memory = serializers.IntegerField(allow_null=True, help_text="Bytes; null = not limited.")
    gpu = serializers.IntegerField()


class StepSourceSerializer(serializers.Serializer):
    cells = serializers.ListField(child=serializers.IntegerField())
    first_lines = serializers.ListField(child=serializers.IntegerField())


class StepSerializer(serializers.Serializer):
    name = serializers.CharField()
    code = serializers.CharField()
    prelude = serializers.CharField(allow_blank=True)
    inputs = serializers.DictField(child=serializers.CharField(), help_text="Variable -> the step producing it.")
    outputs = serializers.ListField(child=serializers.CharField())
    upstream = serializers.ListField(child=serializers.CharField())
    parameters = serializers.ListField(child=serializers.CharField())
    imports = serializers.ListField(child=serializers.CharField())
    foreach = ForeachSerializer(allow_null=True)
    branch_of = serializers.CharField(allow_null=True)
    join = serializers.BooleanField()
    resources = ResourcesSerializer()
    retry = serializers.IntegerField()
    timeout = serializers.IntegerField(allow_null=True)
    cache = serializers.BooleanField()
    tags = serializers.ListField(child=serializers.CharField())
    source = StepSourceSerializer(allow_null=True, help_text="The notebook cells the step came from.")


class EdgeSerializer(serializers.Serializer):
    source = serializers.CharField()
    target = serializers.CharField()
    variables = serializers.ListField(child=serializers.CharField(), help_text="Empty for a `prev:` edge.")


class ParameterSerializer(serializers.Serializer):
    name = serializers.CharField()
    default = serializers.JSONField(allow_null=True)
    type = serializers.CharField()


class EnvironmentSerializer(serializers.Serializer):
    python = serializers.CharField()
    packages = serializers.DictField(child=serializers.CharField(), help_text="The lock: distribution -> version.")
    modules = serializers.DictField(child=serializers.CharField())


class ProblemSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    cell = serializers.IntegerField(allow_null=True)
    step = serializers.CharField(allow_null=True)
    line = serializers.IntegerField(allow_null=True)


class VersionRefSerializer(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.IntegerField()


class VersionSummarySerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The content hash (sha256 of the canonical spec).")
    number = serializers.IntegerField(help_text="1, 2, 3… per pipeline, for people.")
    pipeline = serializers.CharField()
    notebook = serializers.CharField(allow_blank=True)
    step_count = serializers.IntegerField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    is_production = serializers.BooleanField()


class VersionDetailSerializer(VersionSummarySerializer):
    format = serializers.IntegerField()
    steps = StepSerializer(many=True)
    edges = EdgeSerializer(many=True)
    parameters = ParameterSerializer(many=True)
    environment = EnvironmentSerializer()
    warnings = ProblemSerializer(many=True, help_text="Warnings recorded when the version was created.")


class VersionCreatedSerializer(VersionDetailSerializer):
    created = serializers.BooleanField(help_text="False when this content already was a version.")
    request_warnings = ProblemSerializer(many=True, help_text="This request's compile and environment warnings.")


class CompileResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    id = serializers.CharField(allow_null=True, help_text="The version id this content would get.")
    steps = StepSerializer(many=True)
    edges = EdgeSerializer(many=True)
    parameters = ParameterSerializer(many=True)
    environment = EnvironmentSerializer(allow_null=True)
    warnings = ProblemSerializer(many=True)
    problems = ProblemSerializer(many=True)


class PipelineSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    version_count = serializers.IntegerField()
    latest_version = serializers.IntegerField(allow_null=True)
    production = VersionRefSerializer(allow_null=True)


class ProductionMoveSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["promote", "rollback"])
    from_version = VersionRefSerializer(allow_null=True)
    to_version = VersionRefSerializer()
    actor = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class ProductionSerializer(serializers.Serializer):
    current = VersionSummarySerializer(allow_null=True)
    count = serializers.IntegerField(help_text="Moves in the history.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ProductionMoveSerializer(many=True, help_text="The alias's moves, newest first.")


class ProductionMovedSerializer(serializers.Serializer):
    current = VersionSummarySerializer()
    moved = serializers.BooleanField(help_text="False when production already was that version.")
    move = ProductionMoveSerializer(allow_null=True)


# Diff shapes: "from"/"to" are Python keywords, so these classes are built with type().
_Change = type(
    "ChangeSerializer",
    (serializers.Serializer,),
    {"from": serializers.JSONField(allow_null=True), "to": serializers.JSONField(allow_null=True)},
)


class StepDiffSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["added", "removed", "changed", "unchanged"])
    code_diff = serializers.CharField(allow_blank=True, help_text="Unified diff of the step's code.")
    prelude_diff = serializers.CharField(allow_blank=True)
    changes = serializers.DictField(child=_Change(), help_text="Field -> {from, to}: tags, resources, inputs…")


class ParameterValueSerializer(serializers.Serializer):
    default = serializers.JSONField(allow_null=True)
    type = serializers.CharField()


ParameterDiffSerializer = type(
    "ParameterDiffSerializer",
    (serializers.Serializer,),
    {
        "name": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["added", "removed", "changed"]),
        "from": ParameterValueSerializer(allow_null=True),
        "to": ParameterValueSerializer(allow_null=True),
    },
)


class PackageSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()


PackageChangeSerializer = type(
    "PackageChangeSerializer",
    (serializers.Serializer,),
    {"name": serializers.CharField(), "from": serializers.CharField(), "to": serializers.CharField()},
)


class PackagesDiffSerializer(serializers.Serializer):
    added = PackageSerializer(many=True)
    removed = PackageSerializer(many=True)
    changed = PackageChangeSerializer(many=True)


class EnvironmentDiffSerializer(serializers.Serializer):
    changed = serializers.BooleanField()
    python = _Change(allow_null=True)
    packages = PackagesDiffSerializer()
    modules = PackagesDiffSerializer()


class DiffSummarySerializer(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    changed = serializers.IntegerField()


VersionDiffSerializer = type(
    "VersionDiffSerializer",
    (serializers.Serializer,),
    {
        "from": VersionSummarySerializer(),
        "to": VersionSummarySerializer(),
        "identical": serializers.BooleanField(),
        "format": _Change(allow_null=True),
        "summary": DiffSummarySerializer(),
        "steps": StepDiffSerializer(many=True),
        "parameters": ParameterDiffSerializer(many=True),
        "environment": EnvironmentDiffSerializer(),
    },
)
