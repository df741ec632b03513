"""Reads for the tracking pages: experiment list, runs table, run page, metric charts, compare.

The API's reads live in selectors.py; these shape data for one page each and keep
their query counts flat however many runs an experiment holds: a runs table page
loads its 50 runs, then the chosen columns' values for those runs, one query per
kind; a chart loads one metric's history for all its runs in one query.
Callers are inside `team_scope` (the `team_page` decorator enters it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import posixpath
from collections import Counter
from dataclasses import dataclass, field

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db.models import Count, F, Max, Q, Value
from django.db.models.functions import Coalesce, Greatest

from cellar_server.teams.models import Team
from cellar_server.tracking import curves, selectors
from cellar_server.tracking.downsample import points_per_curve
from cellar_server.tracking.errors import TrackingError
from cellar_server.tracking.models import ACTIVE, Experiment, LatestMetric, Param, Run, RunTag
from cellar_server.tracking.search.parser import SearchSyntaxError, parse_order_by
from cellar_server.tracking.services import artifacts
from cellar_server.tracking.services.runs import (
    GIT_COMMIT_TAG,
    RUN_NAME_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
    USER_TAG,
)

PAGE_SIZE = 50
EXPERIMENTS_PAGE_SIZE = 50
MAX_COMPARE_RUNS = 100
DEFAULT_METRIC_COLUMNS = 5
DEFAULT_PARAM_COLUMNS = 5
MAX_COLUMN_CHOICES = 500
DEFAULT_CHARTS = 12
# A chart's points, shared among its curves: ~70 kB of JSON whatever the run count,
# so a compare page with ten charts stays under a megabyte.
CHART_POINT_BUDGET = 5000
MIN_POINTS_PER_CURVE = 40
CURVE_CACHE_SECONDS = 600

KIND_PREFIX = {"metric": "metrics", "param": "params", "tag": "tags"}
PREFIX_KIND = {v: k for k, v in KIND_PREFIX.items()}
# Columns every runs table shows, sortable through the search grammar's attributes.
ATTRIBUTE_COLUMNS = [
    ("run_name", "Run"),
    ("start_time", "Created"),
    ("duration", "Duration"),
    ("status", "Status"),
    ("user_id", "User"),
]
# Tags already shown as run attributes; the rest are the user's.
SYSTEM_TAGS = {RUN_NAME_TAG, USER_TAG, SOURCE_NAME_TAG, SOURCE_TYPE_TAG, GIT_COMMIT_TAG}
ENVIRONMENT_TAGS = ("cellar.environment", "cellar.environment_hash", "environment", "env", "mlflow.docker.image.name")
PALETTE = ["#5b3df5", "#e8590c", "#0ca678", "#d6336c", "#1c7ed6", "#f59f00", "#7048e8", "#2b8a3e", "#c92a2a", "#495057"]

ARTIFACT_URI_PREFIX = "mlflow-artifacts:/"
TEXT_PREVIEW_BYTES = 64 * 1024
CSV_PREVIEW_ROWS = 50
CSV_READ_BYTES = 256 * 1024
JSON_PRETTY_LIMIT = 2 * 1024 * 1024
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
TEXT_EXTENSIONS = {
    ".txt", ".log", ".md", ".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".sh", ".sql",
    ".html", ".xml", ".ipynb", ".r", ".js", ".ts", ".rst",
}  # fmt: skip


def run_color(index: int) -> str:
    """A stable colour per position: a 10-colour palette, then golden-angle hues."""
    if index < len(PALETTE):
        return PALETTE[index]
    return f"hsl({(index * 137.508) % 360:.0f}, 62%, 46%)"


# --- experiments ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentList:
    page: Page
    has_runs: bool


def experiment_list(*, team: Team, query: str = "", page_number: str | int | None = 1) -> ExperimentList:
    """Active experiments with their run counts, most recently active first."""
    experiments = Experiment.objects.filter(lifecycle_stage=ACTIVE)
    if query:
        experiments = experiments.filter(name__icontains=query)
    active_runs = Q(runs__lifecycle_stage=ACTIVE)
    experiments = experiments.annotate(
        run_count=Count("runs", filter=active_runs),
        last_activity=Greatest(
            F("last_update_time"),
            Coalesce(Max("runs__start_time", filter=active_runs), Value(0)),
            Coalesce(Max("runs__end_time", filter=active_runs), Value(0)),
        ),
    ).order_by("-last_activity", "number")
    page = Paginator(experiments, EXPERIMENTS_PAGE_SIZE).get_page(page_number)
    has_runs = any(e.run_count for e in page.object_list) or Run.objects.filter(lifecycle_stage=ACTIVE).exists()
    return ExperimentList(page=page, has_runs=has_runs)


def experiment_for_page(*, number: int) -> Experiment | None:
    return Experiment.objects.filter(number=number).first()


# --- runs table -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    kind: str  # metric | param | tag
    key: str

    @property
    def id(self) -> str:
        return f"{KIND_PREFIX[self.kind]}.{self.key}"

    def order_clause(self, *, ascending: bool) -> str:
        # Back-quoted: keys may hold spaces, dashes and slashes, which the grammar reads as words only bare.
        return f"{KIND_PREFIX[self.kind]}.`{self.key}` {'ASC' if ascending else 'DESC'}"


def parse_columns(raw: list[str]) -> list[Column]:
    """'metrics.acc', 'params.lr', 'tags.team' → columns; anything else is dropped. Order kept, no repeats."""
    columns: list[Column] = []
    for item in raw:
        prefix, dot, key = item.partition(".")
        if dot and key and prefix in PREFIX_KIND:
            column = Column(PREFIX_KIND[prefix], key)
            if column not in columns:
                columns.append(column)
    return columns


@dataclass(frozen=True)
class SortState:
    kind: str
    key: str
    ascending: bool


def sort_state(order: str) -> SortState | None:
    if not order:
        return None
    try:
        parsed = parse_order_by([order])
    except SearchSyntaxError:
        return None
    return SortState(parsed[0].kind, parsed[0].key, parsed[0].ascending) if parsed else None


@dataclass
class RunRow:
    run: Run
    cells: list = field(default_factory=list)  # one per column: (value, is_nan) for metrics, str | None otherwise


@dataclass
class RunTable:
    rows: list[RunRow]
    columns: list[Column]
    page: Page | None
    error: str = ""


def run_table(
    *,
    team: Team,
    experiment: Experiment,
    filter_string: str,
    order: str,
    columns: list[Column] | None,
    page_number: str | int | None,
) -> RunTable:
    """One page of an experiment's runs and the chosen columns' values.

    `columns=None` means "not chosen yet": the first few metric and param keys found
    on this page's runs are shown, from the same per-kind queries.
    """
    try:
        queryset = selectors.run_search_queryset(
            team=team,
            experiment_numbers=[experiment.number],
            filter_string=filter_string,
            order_by=[order] if order else None,
        )
    except TrackingError as exc:
        return RunTable(rows=[], columns=columns or [], page=None, error=exc.message)
    page = Paginator(queryset, PAGE_SIZE).get_page(page_number)
    runs = list(page.object_list)
    values, columns = _column_values([r.pk for r in runs], columns)
    rows = [RunRow(run, [values.get((run.pk, c.kind, c.key)) for c in columns]) for run in runs]
    return RunTable(rows=rows, columns=columns, page=page)


def _column_values(run_ids: list[int], columns: list[Column] | None) -> tuple[dict, list[Column]]:
    """{(run_id, kind, key): value} for the runs, one query per kind that has a column."""
    values: dict = {}
    if not run_ids:
        return values, columns or []
    wanted = {kind: [c.key for c in columns or [] if c.kind == kind] for kind in KIND_PREFIX}
    found: dict[str, set[str]] = {kind: set() for kind in KIND_PREFIX}
    for kind, model in (("metric", LatestMetric), ("param", Param), ("tag", RunTag)):
        if columns is not None and not wanted[kind]:
            continue
        if columns is None and kind == "tag":
            continue  # tag columns only when asked for: most tags are the client's bookkeeping
        rows = model.objects.filter(run_id__in=run_ids)
        if columns is not None:
            rows = rows.filter(key__in=wanted[kind])
        fields = ("run_id", "key", "value", "is_nan") if kind == "metric" else ("run_id", "key", "value")
        for row in rows.values_list(*fields):
            values[(row[0], kind, row[1])] = (row[2], row[3]) if kind == "metric" else row[2]
            found[kind].add(row[1])
    if columns is None:
        columns = [Column("metric", k) for k in sorted(found["metric"])[:DEFAULT_METRIC_COLUMNS]]
        columns += [Column("param", k) for k in sorted(found["param"])[:DEFAULT_PARAM_COLUMNS]]
    return values, columns


def experiment_column_choices(*, experiment: Experiment) -> dict[str, list[str]]:
    """Every metric, param and tag key logged in the experiment, for the column picker (loaded on demand)."""
    runs = Run.objects.filter(experiment=experiment, lifecycle_stage=ACTIVE).values("pk")
    choices = {}
    for kind, model in (("metric", LatestMetric), ("param", Param), ("tag", RunTag)):
        keys = model.objects.filter(run__in=runs).values_list("key", flat=True).distinct().order_by("key")
        choices[kind] = list(keys[:MAX_COLUMN_CHOICES])
    return choices


# --- run page ---------------------------------------------------------------------------------------------


def run_for_page(*, run_uuid: str) -> Run | None:
    return Run.objects.select_related("experiment").filter(run_uuid=run_uuid).first()


@dataclass(frozen=True)
class RunDetail:
    run: Run
    params: list[Param]
    tags: list[RunTag]
    system_tags: list[RunTag]
    metrics: list[LatestMetric]
    environment: str | None  # "Python 3.11.7, 142 packages · 1f2e3d4c", or another environment tag's value


def environment_label(tags: dict[str, str]) -> str | None:
    """What a run ran on, from the SDK's summary and lock hash, else the first environment tag found.

    The hash is part of the label so that two runs on different package versions never read alike."""
    summary, digest = tags.get("cellar.environment"), tags.get("cellar.environment_hash")
    if summary or digest:
        return " · ".join(x for x in (summary, digest[:8] if digest else None) if x)
    return next((tags[k] for k in ENVIRONMENT_TAGS if k in tags), None)


def run_detail(*, run: Run) -> RunDetail:
    params = list(Param.objects.filter(run=run).order_by("key"))
    all_tags = list(RunTag.objects.filter(run=run).order_by("key"))
    metrics = list(LatestMetric.objects.filter(run=run).order_by("key"))
    user_tags = [t for t in all_tags if not t.key.startswith("mlflow.")]
    system_tags = [t for t in all_tags if t.key.startswith("mlflow.")]
    environment = environment_label({t.key: t.value for t in all_tags})
    return RunDetail(
        run=run, params=params, tags=user_tags, system_tags=system_tags, metrics=metrics, environment=environment
    )


# --- metric charts ----------------------------------------------------------------------------------------


def runs_by_uuid(*, uuids: list[str]) -> list[Run]:
    """The team's runs among `uuids`, in the order given; unknown ones (or another team's) are left out."""
    found = {r.run_uuid: r for r in Run.objects.filter(run_uuid__in=uuids)}
    return [found[u] for u in uuids if u in found]


@dataclass(frozen=True)
class Chart:
    key: str
    payload: str  # JSON for tracking.js, escaped for a <script type="application/json"> element
    points: int  # rows read to draw it (summaries or raw points), before downsampling
    per_curve: int
    curves: int


_JSON_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def script_json(value) -> str:
    """Compact JSON safe inside a <script> element; NaN is refused (JSON has none, browsers choke on it)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).translate(_JSON_SCRIPT_ESCAPES)


def metric_chart(*, runs: list[Run], key: str) -> Chart:
    """One metric's history for each run, downsampled, as Plotly-ready traces.

    A chart whose histories have not changed is not read again: it is cached under
    each run's latest point for the key, which moves whenever a run logs a later
    step (and under the runs' names and order, which its legend shows). Otherwise
    it is one query for all the runs, streamed.
    """
    per_curve = points_per_curve(len(runs), budget=CHART_POINT_BUDGET, floor=MIN_POINTS_PER_CURVE)
    pks = [r.pk for r in runs]
    latest = {
        row[0]: row[1:]
        for row in LatestMetric.objects.filter(run_id__in=pks, key=key).values_list(
            "run_id", "step", "timestamp", "value", "is_nan"
        )
    }
    fingerprint = json.dumps([key, per_curve, [(r.run_uuid, r.name, latest.get(r.pk)) for r in runs]])
    cache_key = "cellar:tracking:chart:" + hashlib.sha256(fingerprint.encode()).hexdigest()
    chart = cache.get(cache_key)
    if chart is None:
        chart = _build_chart(runs, key, per_curve, spans={pk: point[0] for pk, point in latest.items()})
        cache.set(cache_key, chart, CURVE_CACHE_SECONDS)
    return chart


def _build_chart(runs: list[Run], key: str, per_curve: int, spans: dict[int, int]) -> Chart:
    curves, total = _load_curves([r.pk for r in runs], key, per_curve, spans)
    traces = []
    for index, run in enumerate(runs):
        if run.pk in curves:
            steps, values = curves[run.pk]
            traces.append(
                {
                    "name": run.name or run.run_uuid[:8],
                    "color": run_color(index),
                    "x": steps,
                    "y": [_chart_value(v) for v in values],
                }
            )
    payload = script_json({"key": key, "points": total, "traces": traces})
    return Chart(key, payload, total, per_curve, len(traces))


def _load_curves(
    pks: list[int], key: str, per_curve: int, spans: dict[int, int]
) -> tuple[dict[int, tuple[list, list]], int]:
    """Each run's downsampled curve, from the step-bucket summaries kept at write time (tracking/curves.py)."""
    return curves.load_curves(pks, key, per_curve, spans=spans)


def _chart_value(value: float) -> float | None:
    # Six significant digits draw exactly at any chart size and keep the payload small;
    # JSON has no NaN or Infinity, so a non-finite value becomes a gap in the line.
    return float(f"{value:.6g}") if math.isfinite(value) else None


# --- compare ----------------------------------------------------------------------------------------------


@dataclass
class DiffRow:
    label: str
    cells: list[str]
    differs: bool
    odd: list[bool]  # per cell: differs from the row's most common value

    @property
    def pairs(self) -> list[tuple[str, bool]]:
        return list(zip(self.cells, self.odd, strict=True))


@dataclass
class DiffSection:
    title: str
    rows: list[DiffRow]


@dataclass
class Comparison:
    runs: list[Run]
    colors: list[str]
    metric_keys: list[str]
    param_keys: list[str]
    sections: list[DiffSection]
    plot_data: dict


def _diff_row(label: str, cells: list[str]) -> DiffRow:
    counts = Counter(cells)
    common, times = counts.most_common(1)[0]
    differs = len(counts) > 1
    if not differs:
        return DiffRow(label, cells, False, [False] * len(cells))
    # With no value shared by two runs, every cell is its own: mark them all.
    odd = [True] * len(cells) if times == 1 else [c != common for c in cells]
    return DiffRow(label, cells, True, odd)


def format_metric(value: float, is_nan: bool = False) -> str:
    if is_nan or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.6g}"


def format_duration(start_ms: int | None, end_ms: int | None) -> str:
    if start_ms is None or end_ms is None or end_ms < start_ms:
        return "—"
    seconds = (end_ms - start_ms) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def _number_or_text(raw: str | None):
    if raw is None:
        return None
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw


def compare_runs(*, runs: list[Run]) -> Comparison:
    """Params, latest metrics and tags of up to MAX_COMPARE_RUNS runs, as a diff and as plot data."""
    loaded = {r.pk: r for r in selectors.runs_with_data(Run.objects.filter(pk__in=[r.pk for r in runs]))}
    runs = [loaded[r.pk] for r in runs if r.pk in loaded]
    params = [{p.key: p.value for p in r.params.all()} for r in runs]
    metrics = [{m.key: m for m in r.latest_metrics.all()} for r in runs]
    tags = [{t.key: t.value for t in r.tags.all()} for r in runs]
    param_keys = sorted(set().union(*params)) if runs else []
    metric_keys = sorted(set().union(*metrics)) if runs else []
    tag_keys = sorted({k for t in tags for k in t if k not in SYSTEM_TAGS and k not in ENVIRONMENT_TAGS})

    missing = "—"
    run_rows = [
        _diff_row("Status", [r.status for r in runs]),
        _diff_row("Duration", [format_duration(r.start_time, r.end_time) for r in runs]),
        _diff_row("User", [r.user_name or missing for r in runs]),
        _diff_row("Source", [f"{r.source_type}: {r.source_name}" if r.source_name else r.source_type for r in runs]),
        _diff_row("Code version", [r.code_version or missing for r in runs]),
    ]
    environments = [environment_label(t) for t in tags]
    if any(environments):
        run_rows.append(_diff_row("Environment", [e or missing for e in environments]))
    sections = [
        DiffSection("Run", run_rows),
        DiffSection("Parameters", [_diff_row(k, [p.get(k, missing) for p in params]) for k in param_keys]),
        DiffSection(
            "Metrics (latest)",
            [
                _diff_row(k, [format_metric(m[k].value, m[k].is_nan) if k in m else missing for m in metrics])
                for k in metric_keys
            ],
        ),
        DiffSection("Tags", [_diff_row(k, [t.get(k, missing) for t in tags]) for k in tag_keys]),
    ]
    colors = [run_color(i) for i in range(len(runs))]
    plot_data = {
        "runs": [
            {"uuid": r.run_uuid, "name": r.name or r.run_uuid[:8], "color": c}
            for r, c in zip(runs, colors, strict=True)
        ],
        "params": {k: [_number_or_text(p.get(k)) for p in params] for k in param_keys},
        "metrics": {
            k: [_chart_value(m[k].value) if k in m and not m[k].is_nan else None for m in metrics] for k in metric_keys
        },
    }
    return Comparison(runs, colors, metric_keys, param_keys, sections, plot_data)


def parse_run_ids(values: list[str]) -> list[str]:
    """`runs=a,b,c` and repeated `run=` values → unique ids in order."""
    seen: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part:
                seen.setdefault(part, None)
    return list(seen)


# --- artifacts --------------------------------------------------------------------------------------------


def artifact_root(run: Run) -> str | None:
    """The run's folder in the team's artifact tree, or None when its artifacts live outside Cellar."""
    if not run.artifact_uri.startswith(ARTIFACT_URI_PREFIX):
        return None
    return run.artifact_uri[len(ARTIFACT_URI_PREFIX) :].strip("/")


@dataclass(frozen=True)
class Crumb:
    name: str
    path: str


@dataclass
class Preview:
    kind: str  # image | text | csv | json | binary
    name: str
    path: str
    size: int
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False


@dataclass
class ArtifactView:
    directory: str  # relative to the run's root
    entries: list[artifacts.FileEntry]
    crumbs: list[Crumb]
    preview: Preview | None = None

    @property
    def items(self) -> list[tuple[artifacts.FileEntry, str]]:
        """Entries with their paths relative to the run's root, folders first."""
        ordered = sorted(self.entries, key=lambda e: (not e.is_dir, e.path))
        return [(e, artifacts.join(self.directory, e.path)) for e in ordered]


def clean_relative_path(path: str) -> str:
    """A path below the run's root; raises TrackingError on traversal or absolute paths."""
    from cellar_server.tracking.validation import normalize_artifact_path

    return normalize_artifact_path(path)


def artifact_view(*, team: Team, run: Run, path: str) -> ArtifactView | None:
    """The listing at `path` (a directory), or its parent's listing plus a preview (a file); None if neither."""
    root = artifact_root(run)
    if root is None:
        return None
    relative = clean_relative_path(path)
    entries = artifacts.artifact_list(team=team, directory=artifacts.join(root, relative))
    if entries or not relative:
        return ArtifactView(relative, entries, _crumbs(relative))
    preview = artifact_preview(team=team, root=root, relative=relative)
    if preview is None:
        return None
    parent = posixpath.dirname(relative)
    siblings = artifacts.artifact_list(team=team, directory=artifacts.join(root, parent))
    return ArtifactView(parent, siblings, _crumbs(parent), preview)


def _crumbs(relative: str) -> list[Crumb]:
    crumbs, parts = [], relative.split("/") if relative else []
    for i, name in enumerate(parts):
        crumbs.append(Crumb(name, "/".join(parts[: i + 1])))
    return crumbs


def image_type(name: str) -> str | None:
    return IMAGE_TYPES.get(posixpath.splitext(name)[1].lower())


def artifact_preview(*, team: Team, root: str, relative: str) -> Preview | None:
    try:
        stream, row = artifacts.artifact_open(team=team, path=artifacts.join(root, relative))
    except TrackingError:
        return None
    name = posixpath.basename(relative)
    extension = posixpath.splitext(name)[1].lower()
    preview = Preview(kind="binary", name=name, path=relative, size=row.size)
    with stream:
        if extension in IMAGE_TYPES:
            preview.kind = "image"
        elif extension in (".csv", ".tsv"):
            _csv_preview(preview, stream.read(CSV_READ_BYTES), delimiter="\t" if extension == ".tsv" else ",")
        elif extension == ".json" and row.size <= JSON_PRETTY_LIMIT:
            _json_preview(preview, stream.read())
        else:
            head = stream.read(TEXT_PREVIEW_BYTES)
            if extension in TEXT_EXTENSIONS or extension == ".json" or _looks_textual(head):
                preview.kind = "text"
                preview.text = head.decode("utf-8", errors="replace")
                preview.truncated = row.size > len(head)
    return preview


def _looks_textual(head: bytes) -> bool:
    if not head or b"\x00" in head[:8192]:
        return False
    try:
        head[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head[:8192]) - 4  # a character cut at the sample's end
    return True


def _csv_preview(preview: Preview, data: bytes, *, delimiter: str) -> None:
    preview.kind = "csv"
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    cut_mid_file = preview.size > len(data)
    if cut_mid_file and lines:
        lines = lines[:-1]  # the last line may be cut in half
    reader = csv.reader(io.StringIO("\n".join(lines[: CSV_PREVIEW_ROWS + 1])), delimiter=delimiter)
    preview.rows = list(reader)
    preview.truncated = cut_mid_file or len(lines) > CSV_PREVIEW_ROWS + 1


def _json_preview(preview: Preview, data: bytes) -> None:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        preview.kind = "text"
        preview.text = data[:TEXT_PREVIEW_BYTES].decode("utf-8", errors="replace")
        preview.truncated = len(data) > TEXT_PREVIEW_BYTES
        return
    pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
    preview.kind = "json"
    preview.text = pretty[:TEXT_PREVIEW_BYTES]
    preview.truncated = len(pretty) > TEXT_PREVIEW_BYTES


def artifact_file(*, team: Team, run: Run, path: str):
    """(stream, size, content type or None) of one file of the run; raises TrackingError when there is none."""
    root = artifact_root(run)
    if root is None:
        raise TrackingError("RESOURCE_DOES_NOT_EXIST", "This run's artifacts are not stored in Cellar.")
    relative = clean_relative_path(path)
    if not relative:
        raise TrackingError("RESOURCE_DOES_NOT_EXIST", "No file named.")
    stream, row = artifacts.artifact_open(team=team, path=artifacts.join(root, relative))
    return stream, row.size, image_type(relative)
