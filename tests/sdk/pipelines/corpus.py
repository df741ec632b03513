"""The compiler's corpus: realistic notebooks, built here and committed as notebooks/*.ipynb.

    .venv/bin/python -m tests.sdk.pipelines.corpus      # rewrite notebooks/ after editing this file

test_corpus_files checks that the committed files are what this script writes, so the
notebooks a reviewer opens in Jupyter are the ones the tests compile.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

HERE = Path(__file__).resolve().parent / "notebooks"


def code(source: str, *tags: str):
    return new_code_cell(source.strip("\n"), metadata={"tags": list(tags)} if tags else {})


def md(text: str):
    return new_markdown_cell(text)


def notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"  # stable ids: the files do not churn when rebuilt
    return nb


# --- notebooks that compile ---------------------------------------------------------------


def kale_tagged():
    """Kale-style: imports/functions/pipeline-parameters cells, block:/step:/prev:, skip."""
    return notebook(
        md("# Churn model\nLoads the customer table, builds features, trains and evaluates."),
        code("import pandas as pd\nimport numpy as np\nfrom sklearn.linear_model import LogisticRegression", "imports"),
        code("test_size = 0.2\nC = 1.0\nfeatures = ['age', 'tenure']", "pipeline-parameters"),
        code(
            """
def split(frame, fraction):
    cut = int(len(frame) * (1 - fraction))
    return frame.iloc[:cut], frame.iloc[cut:]
""",
            "functions",
        ),
        code(
            """
raw = pd.DataFrame({"age": np.arange(20), "tenure": np.arange(20) % 7, "churned": np.arange(20) % 2})
""",
            "block:load_data",
        ),
        code("raw.describe()", "skip"),
        md("## Features"),
        code(
            """
clean = raw.dropna()
clean["ratio"] = clean["tenure"] / (clean["age"] + 1)
""",
            "step:preprocess",
            "prev:load_data",
        ),
        code("train, test = split(clean, test_size)"),
        code(
            """
model = LogisticRegression(C=C)
model.fit(train[features], train["churned"])
""",
            "step:train",
            "cpu:2",
            "memory:2Gi",
            "retry:2",
            "timeout:10m",
        ),
        code(
            """
accuracy = model.score(test[features], test["churned"])
print(f"accuracy {accuracy:.3f}")
""",
            "step:evaluate",
            "cache:off",
        ),
    )


def no_tags():
    """A plain exploratory notebook with no tags at all: each code cell is a step."""
    return notebook(
        md("# Sales forecast"),
        code("import statistics\nimport json"),
        code('sales = [120, 135, 128, 150, 160, 158, 171]\nregion = "north"'),
        code("window = 3\nmoving = [statistics.mean(sales[i - window:i]) for i in range(window, len(sales) + 1)]"),
        new_raw_cell("raw cells are ignored"),
        code("forecast = moving[-1] * 1.05"),
        code('report = json.dumps({"region": region, "forecast": forecast})\nprint(report)'),
    )


def magics():
    """Display-only magics dropped, %time / %%time unwrapped, help lines dropped."""
    return notebook(
        code(
            """
%matplotlib inline
%load_ext autoreload
%autoreload 2
import math
%config InlineBackend.figure_format = 'retina'
"""
        ),
        code(
            """
values = [1.0, 4.0, 9.0]

%time roots = [math.sqrt(v) for v in values]
math.sqrt?
total = sum(roots)
""",
            "step:compute",
        ),
        code(
            """
%%time
doubled = [2 * r for r in roots]
if doubled:
    %precision 3
    biggest = max(doubled)
""",
            "step:report",
        ),
    )


def functions_closures():
    """Functions defined in one cell and used in later steps: free variables are followed,
    transitively, and the definitions travel in the prelude."""
    return notebook(
        code("import re\nfrom functools import lru_cache"),
        code(
            """
stopwords = {"the", "a", "of"}
pattern = re.compile(r"[a-z]+")
""",
            "step:setup",
        ),
        code(
            """
def tokens(text):
    return [w for w in pattern.findall(text.lower()) if w not in stopwords]


def count(text):
    return len(tokens(text))


@lru_cache(maxsize=None)
def cached_len(word):
    return len(word)


class Scorer:
    def __init__(self, weight):
        self.weight = weight

    def score(self, text):
        return self.weight * count(text) + bonus
"""
        ),
        code(
            """
docs = ["The cat of the house", "A dog"]
bonus = 0.5
""",
            "step:load",
        ),
        code(
            """
scorer = Scorer(2)
scores = [scorer.score(d) for d in docs]
lengths = [cached_len(w) for d in docs for w in tokens(d)]
""",
            "step:score",
        ),
    )


def mutation():
    """Steps that change values made earlier produce them again (the nearest producer wins)."""
    return notebook(
        code("import collections", "imports"),
        code("rows = []\nconfig = {'seed': 1}\ncounts = collections.Counter()", "step:init"),
        code("rows.append({'id': 1})\nconfig['seed'] += 1", "step:extend"),
        code("class Box:\n    pass\n\nbox = Box()", "step:make_box"),
        code("box.label = 'ready'\ncounts.update(['a', 'b', 'a'])", "step:label"),
        code("del rows[0]\nlimit = 10\nlimit += len(rows)", "step:trim"),
        code("summary = (len(rows), config['seed'], box.label, counts['a'], limit)", "step:summary"),
    )


def foreach_default_item():
    """foreach:<iterable> binds each element to `item`; the join gets lists."""
    return notebook(
        code("shards = [[1, 2], [3, 4], [5]]", "step:split"),
        code("partial = sum(item)\nsize = len(item)", "step:work", "foreach:shards"),
        code("total = sum(partial)\nsizes = size", "step:combine", "join"),
        code("print(total, sizes)", "step:report"),
    )


def foreach_named_item():
    """foreach:<iterable>:<item> with a parameter iterable and a second branch step."""
    return notebook(
        code("learning_rates = [0.1, 0.01]\nepochs = 2", "parameters"),
        code("history = [lr * epochs for lr in learning_rates]", "step:baseline"),
        code("loss = 1.0\nfor _ in range(epochs):\n    loss *= 1 - rate", "step:fit", "foreach:learning_rates:rate"),
        code("scored = (rate, loss)", "step:score"),
        code("best = min(scored, key=lambda pair: pair[1])\nprint(best, history)", "step:pick", "join"),
    )


def parameters():
    """papermill's `parameters` tag, literal values of every type."""
    return notebook(
        code(
            """
# Parameters (papermill overrides these)
n_rows = 100
ratio: float = 0.25
name = "experiment"
verbose = False
layers = (64, 32)
options = {"mode": "fast", "levels": [1, 2]}
seed = None
threshold = -1e-3
""",
            "parameters",
        ),
        code("data = list(range(n_rows))\nif verbose:\n    print(name)", "step:make"),
        code("cut = int(len(data) * ratio)\nsizes = [n * 2 for n in layers]", "step:use"),
    )


def skip_cells():
    """`skip` cells (scratch work, shell calls, plots) are not looked at."""
    return notebook(
        code("!ls -la data/\n%pip install seaborn", "skip"),
        code("values = [3, 1, 2]", "step:load"),
        code("values.sort(  # half-written exploration", "skip"),
        code("ordered = sorted(values)", "step:order"),
        code("import seaborn\nseaborn.histplot(ordered)", "skip"),
    )


def selected_cells():
    """Used with cells=[...]: a subset of cells forms the pipeline."""
    return notebook(
        code("import math", "imports"),
        code("base = 2", "parameters"),
        code("a = base ** 3"),
        code("b = math.sqrt(a)"),
        code("c = b * 10"),
        code("d = a + 1"),
    )


def start_step():
    """Untagged code before the first step: cell becomes the `start` step."""
    return notebook(
        code("import random"),
        code("random.seed(0)\nraw = [random.random() for _ in range(5)]"),
        code("top = max(raw)", "step:analyse"),
    )


# --- notebooks with errors ------------------------------------------------------------------


def err_cycle():
    return notebook(
        code("a = 1", "step:first", "prev:third"),
        code("b = a + 1", "step:second"),
        code("c = b + 1", "step:third"),
    )


def err_undefined():
    return notebook(
        code("import pandas as pd"),
        code("frame = pd.DataFrame()", "step:load"),
        code("# add the lookup table\nresult = frame.merge(lookup)\nlookup = {}", "step:join_tables"),
        code("display(result)", "step:show"),
    )


def err_unknown_prev():
    return notebook(
        code("x = 1", "step:load"),
        code("y = x * 2", "step:train", "prev:lod"),
    )


def err_syntax():
    return notebook(
        code("x = 1", "step:load"),
        code("# clean up\nfor v in range(3)\n    print(v)", "step:broken"),
        code("y = x + 1", "step:after"),
    )


def err_resources():
    return notebook(
        code("x = 1", "step:prep", "pool:highmem"),
        code("y = x * 2", "step:train", "gpu:4", "memory:512Gi"),
        code("z = y + 1", "step:post", "cpu:64"),
    )


def err_unserializable_static():
    return notebook(
        code(
            """
import socket
import sqlite3
import threading

log = open("run.log", "w")
conn = sqlite3.connect(":memory:")
sock = socket.socket()
lock = threading.Lock()
squares = (i * i for i in range(3))
scale = lambda v: v * 2
ok = [1, 2, 3]
""",
            "step:resources",
        ),
        code("log.write('x')\nconn.execute('select 1')\nsock.close()\nlock.acquire()", "step:use"),
        code("print(list(squares), scale(2), ok)", "step:more"),
    )


def err_unserializable_kernel():
    return notebook(
        code("import ssl\ncontext = ssl.create_default_context()\nrows = [1, 2]", "step:connect"),
        code("print(context, rows)", "step:fetch"),
    )


def err_pip_magic():
    return notebook(
        code("%pip install xgboost\nimport xgboost", "step:setup"),
        code("!pip install -q lightgbm\n!{sys.executable} -m pip install catboost\n%conda install scipy", "step:more"),
        code("%%bash\npip install shap\necho done", "step:bash"),
    )


def err_magic():
    return notebook(
        code("%cd /data\nfiles = !ls\n!wget http://example.com/data.csv", "step:fetch"),
        code("%timeit sum(range(10))\n%run helpers.py", "step:time"),
        code("%%writefile helper.py\ndef f():\n    return 1", "step:write"),
        code("%%sh\necho hello", "step:shell"),
    )


def err_bad_tag():
    return notebook(
        code("x = 1", "step:Load"),
        code("x = 1", "step:ok", "gpu:two", "memory:lots", "timeout:soon", "cache:maybe", "limit:nvidia.com/gpu:1"),
        code("y = 2", "foreach:1bad", "colour:blue", "retry:1"),
        code("z = 3", "step:a", "step:b"),
    )


def err_bad_parameters():
    return notebook(
        code("import os\nn = 10\npath = os.environ['HOME']\nvalues = {1, 2}\nx = y = 3", "parameters"),
        code("print(n)", "step:use"),
    )


def err_nested_foreach():
    return notebook(
        code("outer = [1, 2]\ninner = [3, 4]", "step:make"),
        code("a = item", "step:first", "foreach:outer"),
        code("b = item", "step:second", "foreach:inner"),
        code("c = b", "step:collect", "join"),
    )


def err_join_without_foreach():
    return notebook(
        code("xs = [1, 2]", "step:make"),
        code("total = sum(xs)", "step:collect", "join"),
    )


def err_branch_output():
    return notebook(
        code("parts = [1, 2]", "step:split"),
        code("square = item * item", "step:work", "foreach:parts"),
        code("n = len(square)", "step:gather", "join"),
        code("print(square)", "step:after"),
    )


def err_duplicate_step():
    return notebook(
        code("x = 1", "step:load"),
        code("y = x + 1", "step:load"),
    )


def err_empty():
    return notebook(md("# Nothing to run"), code("", "skip"), code("# just a comment"))


NOTEBOOKS = {
    name: builder
    for name, builder in globals().items()
    if callable(builder) and builder.__module__ == __name__ and name not in ("code", "md", "notebook", "build", "main")
}


def build() -> dict[str, str]:
    """file name -> the notebook's JSON text as nbformat writes it."""
    return {f"{name}.ipynb": nbformat.writes(builder()) + "\n" for name, builder in NOTEBOOKS.items()}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for old in HERE.glob("*.ipynb"):
        old.unlink()
    for file_name, text in build().items():
        (HERE / file_name).write_text(text, encoding="utf-8")
    print(f"wrote {len(NOTEBOOKS)} notebooks to {HERE}")


if __name__ == "__main__":
    main()
