"""The version id: the same notebook content gives the same id; any change that matters,
a new one."""

from __future__ import annotations

import copy
import json

import pytest

from cellar.pipelines.compiler import compile_notebook
from cellar.pipelines.spec import Environment, PipelineSpec
from tests.sdk.pipelines.conftest import ENV, corpus_path


def load(name: str = "kale_tagged") -> dict:
    return json.loads(corpus_path(name).read_text(encoding="utf-8"))


def version(notebook: dict, **options) -> str:
    options.setdefault("environment", ENV)
    return compile_notebook(copy.deepcopy(notebook), **options).spec.content_hash()


def text(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def code_cell(notebook: dict, tag: str) -> dict:
    return next(c for c in notebook["cells"] if tag in c.get("metadata", {}).get("tags", []))


BASE = version(load())


def test_same_notebook_same_id_from_every_kind_of_source():
    path = corpus_path("kale_tagged")
    assert version(load()) == BASE
    assert compile_notebook(path, environment=ENV).spec.content_hash() == BASE
    assert compile_notebook(path.read_text(), environment=ENV).spec.content_hash() == BASE


def _new_ids(nb):
    for index, cell in enumerate(nb["cells"]):
        cell["id"] = f"other-{index}"


def _outputs(nb):
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["execution_count"] = 42
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]


def _markdown(nb):
    nb["cells"][0]["source"] = "# A different title\n\nMore words."
    nb["cells"].insert(3, {"cell_type": "markdown", "id": "extra", "metadata": {}, "source": "A new note"})


def _metadata(nb):
    nb["metadata"]["widgets"] = {"state": {}}
    code_cell(nb, "step:train")["metadata"]["collapsed"] = True


def _trailing_whitespace_and_crlf(nb):
    cell = code_cell(nb, "step:train")
    cell["source"] = "\r\n\r\n" + text(cell).replace("\n", "   \r\n") + "\r\n\r\n"


def _skip_cell(nb):
    code_cell(nb, "skip")["source"] = "raw.plot()\n!ls"


@pytest.mark.parametrize(
    "change",
    [_new_ids, _outputs, _markdown, _metadata, _trailing_whitespace_and_crlf, _skip_cell],
    ids=["cell-ids", "outputs-and-counts", "markdown-edits", "metadata", "whitespace-and-crlf", "skip-cell"],
)
def test_what_does_not_change_the_id(change):
    notebook = load()
    change(notebook)
    assert version(notebook) == BASE


def test_the_notebook_name_does_not_change_the_id():
    assert version(load(), notebook_name="renamed.ipynb") == BASE


def _code(nb):
    cell = code_cell(nb, "step:train")
    cell["source"] = text(cell) + "\nprint('trained')"


def _tag(nb):
    code_cell(nb, "step:train")["metadata"]["tags"].append("gpu:1")


def _resource_value(nb):
    tags = code_cell(nb, "step:train")["metadata"]["tags"]
    tags[tags.index("memory:2Gi")] = "memory:4Gi"


def _parameter_default(nb):
    cell = code_cell(nb, "pipeline-parameters")
    cell["source"] = text(cell).replace("C = 1.0", "C = 0.5")


def _prelude(nb):
    cell = code_cell(nb, "functions")
    cell["source"] = text(cell) + "\n    # a comment in the helper"


def _step_name(nb):
    tags = code_cell(nb, "step:evaluate")["metadata"]["tags"]
    tags[tags.index("step:evaluate")] = "step:score"


@pytest.mark.parametrize(
    "change",
    [_code, _tag, _resource_value, _parameter_default, _prelude, _step_name],
    ids=["code", "tag", "resource", "parameter-default", "functions-cell", "step-name"],
)
def test_what_changes_the_id(change):
    notebook = load()
    change(notebook)
    assert version(notebook) != BASE


def test_the_environment_changes_the_id():
    notebook = load()
    assert version(notebook, environment=Environment(python="3.12", lock=ENV.lock, modules=ENV.modules)) != BASE
    newer = Environment(python="3.11", lock={**ENV.lock, "numpy": "2.1.0"}, modules=ENV.modules)
    assert version(notebook, environment=newer) != BASE


def test_without_an_environment_this_interpreters_lock_is_used():
    spec = compile_notebook(load("no_tags")).spec
    assert spec.environment.python and spec.environment.lock
    assert "nbformat" in spec.environment.lock  # installed here: the compiler's own dependency


def test_the_spec_round_trips_with_the_same_id():
    spec = compile_notebook(load("foreach_named_item"), environment=ENV).spec
    again = PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.content_hash() == spec.content_hash()
    assert again.source == spec.source
