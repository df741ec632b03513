"""Tracking dashboards: access per role and across teams, the runs table (filter, sort, columns, pages,
query counts), the run page and its artifact browser, metric charts and the compare view.
The browser journey is in tests/e2e/test_tracking_pages.py."""

from __future__ import annotations

import json
import math
import re

import pytest

from cellar_server.tracking import dashboards
from cellar_server.tracking.models import LatestMetric, Metric
from tests.conftest import ROLES

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def hx(target: str) -> dict:
    return {**HX, "HTTP_HX_TARGET": target}


def login(client, user):
    client.force_login(user)
    return client


def chart_json(html: str) -> dict:
    match = re.search(r'<script type="application/json">(.*?)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


def compare_json(html: str) -> dict:
    match = re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


def table_run_names(html: str) -> list[str]:
    return re.findall(r'<td class="name"><a href="[^"]+">([^<]+)</a>', html)


@pytest.fixture
def churn(tracking, artifact_folder):
    """An experiment with three runs, histories and artifacts."""
    experiment = tracking.experiment("churn")
    runs = [
        tracking.run(
            experiment,
            name=name,
            params={"lr": lr, "optimizer": opt},
            metrics={"acc": acc},
            tags={"team": team, "cellar.environment": env},
            history={"loss": [(s, 1 / (s + 1) + 0.01 * i) for s in range(30)]},
        )
        for i, (name, lr, opt, acc, team, env) in enumerate(
            [
                ("alpha", 0.1, "adam", 0.91, "core", "py311-torch2"),
                ("beta", 0.01, "sgd", 0.85, "core", "py311-torch2"),
                ("gamma", 0.001, "adam", 0.97, "growth", "py312-torch2"),
            ]
        )
    ]
    first = runs[0]
    tracking.artifact(first, "plots/loss.png", b"\x89PNG\r\n\x1a\nfake")
    tracking.artifact(
        first, "plots/shape.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    )
    tracking.artifact(first, "table.csv", b"id,score\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(120)))
    tracking.artifact(first, "report.json", b'{"auc":0.9,"classes":["a","b"]}')
    tracking.artifact(first, "train.log", b"x" * (70 * 1024))
    tracking.artifact(first, "weights.bin", b"\x00\x01\x02" * 100)
    return {"experiment": experiment, "runs": runs}


def page_paths(churn) -> list[tuple[str, str, dict]]:
    number = churn["experiment"].number
    uuid = churn["runs"][0].run_uuid
    uuids = ",".join(r.run_uuid for r in churn["runs"])
    return [
        ("experiments", "/t/acme/experiments/", {}),
        ("runs", f"/t/acme/experiments/{number}/", {}),
        ("runs-fragment", f"/t/acme/experiments/{number}/?filter=metrics.acc>0.9", hx("runs-results")),
        ("columns", f"/t/acme/experiments/{number}/columns/", HX),
        ("run", f"/t/acme/runs/{uuid}/", {}),
        ("artifacts", f"/t/acme/runs/{uuid}/artifacts/?path=plots", hx("artifacts")),
        ("file", f"/t/acme/runs/{uuid}/files/plots/loss.png", {}),
        ("chart", f"/t/acme/charts/metric/?runs={uuid}&key=loss", HX),
        ("compare", f"/t/acme/compare/?runs={uuids}", {}),
    ]


# --- access -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES + ["outsider", "staff"])
def test_every_page_by_role_and_for_another_team(client, members, outsider, churn, role, django_user_model):
    if role == "outsider":
        user = outsider
    elif role == "staff":
        user = django_user_model.objects.create_user("operator", is_staff=True)
    else:
        user = members[role]
    login(client, user)
    for name, path, headers in page_paths(churn):
        response = client.get(path, **headers)
        # Every role reads; platform admins see a team's quotas, not its experiments.
        expected = {"outsider": 404, "staff": 403}.get(role, 200)
        assert response.status_code == expected, (name, role, response.status_code)


def test_pages_need_sign_in(client, churn):
    for name, path, headers in page_paths(churn):
        response = client.get(path, **headers)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), name


def test_another_teams_experiments_and_runs_are_not_found(client, members, churn, rival_tracking):
    rival = rival_tracking.experiment("secret-project")
    rival_run = rival_tracking.run(rival, name="covert-run", params={"lr": 1}, history={"loss": [(0, 1.0)]})
    rival_tracking.artifact(rival_run, "secret.txt", b"top secret")
    login(client, members["owner"])
    html = client.get("/t/acme/experiments/").content.decode()
    assert "secret-project" not in html and "churn" in html
    # acme has experiment 1 too; rival's number 2 does not exist in acme
    assert client.get(f"/t/acme/experiments/{rival.number + 1}/").status_code == 404
    uuid = rival_run.run_uuid
    assert client.get(f"/t/acme/runs/{uuid}/").status_code == 404
    assert client.get(f"/t/acme/runs/{uuid}/files/secret.txt").status_code == 404
    assert client.get(f"/t/acme/runs/{uuid}/artifacts/?path=", **hx("artifacts")).status_code == 404
    assert client.get(f"/t/acme/charts/metric/?runs={uuid}&key=loss", **HX).status_code == 404
    assert client.get(f"/t/acme/compare/?runs={uuid}").status_code == 404
    # Mixed in with the team's own runs, another team's run is simply "not found".
    mine = churn["runs"][0].run_uuid
    html = client.get(f"/t/acme/compare/?runs={mine},{uuid}").content.decode()
    assert "covert-run" not in html and "1 of the requested runs were not found" in html


def test_navigation_links_experiments(client, members):
    html = login(client, members["viewer"]).get("/t/acme/").content.decode()
    assert '<a href="/t/acme/experiments/" class="" data-nav="experiments">' in html


# --- experiments list -------------------------------------------------------------------------------------


def test_experiments_list_shows_counts_and_ids(client, members, churn, tracking):
    tracking.experiment("empty-one")
    html = login(client, members["viewer"]).get("/t/acme/experiments/").content.decode()
    rows = re.findall(
        r'<tr data-experiment="(\d+)">.*?<a href="([^"]+)">([^<]+)</a>.*?<td class="num">(\d+)</td>', html, re.S
    )
    assert ("1", "/t/acme/experiments/1/", "churn", "3") in rows
    assert any(name == "empty-one" and count == "0" for _, _, name, count in rows)
    assert "getting-started" not in html  # the team already logs runs
    searched = client.get("/t/acme/experiments/", {"q": "EMPTY"}).content.decode()
    assert "empty-one" in searched and ">churn<" not in searched


def test_experiments_empty_state_says_how_to_start_logging(client, members):
    html = login(client, members["viewer"]).get("/t/acme/experiments/").content.decode()
    assert "No experiments yet" in html
    assert "export MLFLOW_TRACKING_URI=http://testserver/t/acme/mlflow" in html
    assert "export MLFLOW_TRACKING_TOKEN=" in html
    assert 'href="/t/acme/admin/tokens/"' in html  # viewers may mint their own read/write-scoped tokens


def test_experiments_page_query_count_is_pinned(client, members, tracking, django_assert_num_queries):
    for i in range(3):
        experiment = tracking.experiment(f"e{i}")
        tracking.bulk_runs(experiment, 20)
    login(client, members["viewer"])
    # session, user, team, membership, count, the page of experiments with run counts
    with django_assert_num_queries(6):
        assert client.get("/t/acme/experiments/").status_code == 200


# --- runs table -------------------------------------------------------------------------------------------


def test_runs_table_defaults_to_the_pages_metric_and_param_columns(client, members, churn):
    html = login(client, members["viewer"]).get("/t/acme/experiments/1/").content.decode()
    assert table_run_names(html) == ["gamma", "beta", "alpha"]  # newest first
    headers = re.findall(r'data-col="(\w+\.[^"]+)"', html)
    assert headers == [
        "attribute.run_name",
        "attribute.start_time",
        "attribute.status",
        "attribute.user_id",
        "metric.acc",
        "metric.loss",
        "param.lr",
        "param.optimizer",
    ]
    assert 'data-col="tag.team"' not in html
    # The columns shown are written into the form, so the next filter keeps them.
    assert '<input type="hidden" name="col" value="metrics.acc">' in html


def test_runs_table_columns_come_from_the_query_string(client, members, churn):
    login(client, members["viewer"])
    html = client.get(
        "/t/acme/experiments/1/", {"col": ["", "tags.team", "params.lr", "bogus", "metrics.nope"]}
    ).content.decode()
    headers = re.findall(r'data-col="((?:metric|param|tag)\.[^"]+)"', html)
    assert headers == ["tag.team", "param.lr", "metric.nope"]
    rows = re.findall(r'<tr data-run="\w+">(.*?)</tr>', html, re.S)
    cells = [re.findall(r'<td class="val[^"]*" title="[^"]*">([^<]*)</td>', r) for r in rows]
    assert cells == [["growth", "0.001", "—"], ["core", "0.01", "—"], ["core", "0.1", "—"]]
    # No columns at all is a choice too.
    bare = client.get("/t/acme/experiments/1/", {"col": ""}).content.decode()
    assert not re.findall(r'data-col="(?:metric|param|tag)\.', bare)


def test_filter_uses_the_search_grammar(client, members, churn):
    login(client, members["viewer"])
    html = client.get(
        "/t/acme/experiments/1/", {"filter": "metrics.acc > 0.9 and params.optimizer = 'adam'"}
    ).content.decode()
    assert table_run_names(html) == ["gamma", "alpha"]
    assert "2 runs matching the filter" in html
    none = client.get("/t/acme/experiments/1/", {"filter": "tags.team = 'nobody'"}).content.decode()
    assert "No runs match this filter" in none


@pytest.mark.parametrize(
    "bad,message",
    [
        ("metrics.acc >> 0.9", "Invalid comparator &#x27;&gt;&gt;&#x27; at position 12"),
        ("bogus.acc = 1", "Unknown key type &#x27;bogus&#x27;"),
        ("metrics.acc = 'high'", "metric"),
    ],
    ids=["comparator", "key-type", "metric-string"],
)
def test_filter_errors_show_inline_next_to_the_box(client, members, churn, bad, message):
    login(client, members["viewer"])
    html = client.get("/t/acme/experiments/1/", {"filter": bad}).content.decode()
    error = re.search(r'<p id="filter-error" class="error filter-error" data-testid="filter-error">([^<]*)</p>', html)
    assert error and message in error.group(1), html
    assert "The filter could not be read" in html and "runs-table" not in html
    # With htmx, the error replaces the one beside the box out of band, and the table is swapped.
    fragment = client.get("/t/acme/experiments/1/", {"filter": bad}, **hx("runs-results")).content.decode()
    assert '<p id="filter-error" class="error filter-error" hx-swap-oob="true"' in fragment
    assert message in fragment and "<html" not in fragment


def test_clicking_a_header_sorts_on_the_server(client, members, churn):
    login(client, members["viewer"])
    html = client.get("/t/acme/experiments/1/").content.decode()
    link = re.search(r'data-col="metric.acc">\s*<a href="\?([^"]+)"', html).group(1)
    assert "order=metrics.%60acc%60+DESC" in link  # metrics sort biggest first on the first click
    descending = client.get(f"/t/acme/experiments/1/?{link.replace('&amp;', '&')}").content.decode()
    assert table_run_names(descending) == ["gamma", "alpha", "beta"]
    assert 'aria-sort="descending"' in descending
    flip = re.search(r'data-col="metric.acc" aria-sort="descending">\s*<a href="\?([^"]+)"', descending).group(1)
    ascending = client.get(f"/t/acme/experiments/1/?{flip.replace('&amp;', '&')}").content.decode()
    assert table_run_names(ascending) == ["beta", "alpha", "gamma"]
    by_param = client.get("/t/acme/experiments/1/", {"order": "params.optimizer ASC"}).content.decode()
    assert table_run_names(by_param)[-1] == "beta"
    by_name = client.get("/t/acme/experiments/1/", {"order": "attributes.run_name DESC"}).content.decode()
    assert table_run_names(by_name) == ["gamma", "beta", "alpha"]
    bad = client.get("/t/acme/experiments/1/", {"order": "metrics.acc SIDEWAYS"}).content.decode()
    assert "Invalid order_by" in bad


def test_runs_table_pages_by_50(client, members, tracking):
    experiment = tracking.experiment("big")
    tracking.bulk_runs(experiment, 120, metrics=lambda i: {"acc": i / 1000})
    login(client, members["viewer"])
    first = client.get(f"/t/acme/experiments/{experiment.number}/").content.decode()
    assert len(table_run_names(first)) == 50 and table_run_names(first)[0] == "bulk-00119"
    assert "1–50 of 120 runs" in first
    third = client.get(
        f"/t/acme/experiments/{experiment.number}/", {"page": 3, "col": ["", "metrics.acc"]}
    ).content.decode()
    assert table_run_names(third) == [f"bulk-{i:05d}" for i in range(19, -1, -1)]
    assert "101–120 of 120 runs" in third
    assert '<span class="current" aria-current="page">3</span>' in third
    # Page links keep the filter, the order and the columns.
    assert re.search(r'href="\?col=&amp;col=metrics.acc&page=2"', third)  # no empty filter or order
    beyond = client.get(f"/t/acme/experiments/{experiment.number}/", {"page": 99}).content.decode()
    assert "101–120 of 120 runs" in beyond  # past the end is the last page


def test_htmx_swaps_only_the_table(client, members, churn):
    login(client, members["viewer"])
    response = client.get("/t/acme/experiments/1/", {"filter": "params.lr = '0.1'"}, **hx("runs-results"))
    html = response.content.decode()
    assert "<html" not in html and 'data-testid="runs-table"' in html and table_run_names(html) == ["alpha"]
    assert "HX-Request" in response["Vary"]
    # A history restore asks for the whole page.
    restore = client.get("/t/acme/experiments/1/", **hx("runs-results"), HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in restore.content.decode()


def test_column_picker_lists_every_key_of_the_experiment(client, members, churn, tracking):
    other = tracking.experiment("other")
    tracking.run(other, params={"unrelated": 1})
    html = (
        login(client, members["viewer"])
        .get("/t/acme/experiments/1/columns/", {"col": "params.lr"}, **HX)
        .content.decode()
    )
    values = re.findall(r'<input type="checkbox" name="col" value="([^"]+)"( checked)?>', html)
    assert ("params.lr", " checked") in values and ("metrics.acc", "") in values and ("tags.team", "") in values
    assert not any("unrelated" in v for v, _ in values)


@pytest.mark.parametrize("runs", [10, 1000], ids=["10-runs", "1000-runs"])
@pytest.mark.parametrize(
    "params,queries",
    [
        ({}, 9),  # default columns: metrics + params of the page's runs
        ({"col": ["", "metrics.acc", "params.p1", "tags.t"]}, 10),  # one query per kind chosen
        ({"col": ["", "metrics.acc", "params.p1"], "filter": "metrics.acc >= 0", "order": "params.p1 DESC"}, 9),
    ],
    ids=["default", "all-kinds", "filtered-sorted"],
)
def test_runs_table_query_count_is_pinned(client, members, tracking, django_assert_num_queries, runs, params, queries):
    experiment = tracking.experiment("load")
    tracking.bulk_runs(
        experiment,
        runs,
        params=lambda i: {f"p{k}": i % (k + 2) for k in range(8)},
        metrics=lambda i: {"acc": (i % 100) / 100, "loss": 1 / (i + 1), "f1": 0.5},
        tags=lambda i: {"t": "x", "mlflow.user": "bulk"},
    )
    login(client, members["viewer"])
    url = f"/t/acme/experiments/{experiment.number}/"
    # session, user, team, membership, experiment, count, the page's runs, then one query per column kind
    with django_assert_num_queries(queries):
        response = client.get(url, params)
    assert response.status_code == 200
    assert len(table_run_names(response.content.decode())) == min(runs, 50)


# --- run page ---------------------------------------------------------------------------------------------


def test_run_page_shows_info_params_tags_and_metrics(client, members, churn):
    run = churn["runs"][0]
    html = login(client, members["viewer"]).get(f"/t/acme/runs/{run.run_uuid}/").content.decode()
    assert "<h1>alpha" in html and "finished" in html and "1m 35s" in html
    assert '<th scope="row">lr</th><td><code class="wrap">0.1</code>' in html
    assert '<th scope="row">team</th><td><code class="wrap">core</code>' in html
    assert "mlflow.runName" in html  # client bookkeeping, tucked away
    assert re.search(r'<th scope="row">acc</th><td class="num">0.91</td>', html)
    assert re.search(r'<th scope="row">loss</th><td class="num">0.0333333</td><td class="num muted">29</td>', html)
    # One chart slot per metric, loaded when it scrolls into view.
    slots = re.findall(r'<figure class="chart-slot" hx-get="([^"]+)"\s+hx-trigger="intersect once"', html)
    assert [s.split("key=")[1] for s in slots] == ["acc", "loss"]
    assert f'hx-get="/t/acme/runs/{run.run_uuid}/artifacts/?path=plots"' in html


def test_run_page_says_what_to_do_when_empty(client, members, tracking, artifact_folder):
    run = tracking.run(tracking.experiment("blank"), name="bare", status="RUNNING")
    html = login(client, members["viewer"]).get(f"/t/acme/runs/{run.run_uuid}/").content.decode()
    assert "mlflow.log_params" in html and "mlflow.log_metric" in html and "mlflow.log_artifact" in html
    assert "running" in html


def test_chart_of_a_100k_step_history_is_downsampled_with_extremes(
    client, members, tracking, django_assert_num_queries
):
    run = tracking.run(tracking.experiment("long"), name="long")
    tracking.bulk_history(
        run, "loss", 100_000, lambda s: 7.0 if s == 31_337 else -3.0 if s == 77_777 else math.cos(s / 900)
    )
    login(client, members["viewer"])
    # session, user, team, membership, the runs, their latest points (the cache key), the history
    with django_assert_num_queries(7):
        response = client.get("/t/acme/charts/metric/", {"runs": run.run_uuid, "key": "loss"}, **HX)
    chart = chart_json(response.content.decode())
    (trace,) = chart["traces"]
    assert len(trace["x"]) <= 1000 and chart["points"] < 1000  # summary rows read, not the 100,000 points
    assert max(trace["y"]) == 7.0 and trace["x"][trace["y"].index(7.0)] == 31_337
    assert min(trace["y"]) == -3.0 and trace["x"][trace["y"].index(-3.0)] == 77_777
    assert trace["x"] == sorted(trace["x"]) and trace["x"][0] == 0 and trace["x"][-1] == 99_999


def test_chart_query_count_does_not_grow_with_runs(client, members, tracking, django_assert_num_queries):
    experiment = tracking.experiment("many")
    runs = tracking.bulk_runs(experiment, 40)
    for run in runs:
        tracking.bulk_history(run, "loss", 50, lambda s: 1 / (s + 1))
    login(client, members["viewer"])
    params = {"runs": ",".join(r.run_uuid for r in runs), "key": "loss"}
    with django_assert_num_queries(7):
        response = client.get("/t/acme/charts/metric/", params, **HX)
    assert len(chart_json(response.content.decode())["traces"]) == 40
    # Unchanged histories are not read again.
    with django_assert_num_queries(6):
        again = client.get("/t/acme/charts/metric/", params, **HX)
    assert again.content == response.content


def test_chart_shows_new_points_at_once(client, members, tracking):
    run = tracking.run(tracking.experiment("live"), status="RUNNING", history={"loss": [(s, 1.0) for s in range(10)]})
    login(client, members["viewer"])
    params = {"runs": run.run_uuid, "key": "loss"}
    assert len(chart_json(client.get("/t/acme/charts/metric/", params, **HX).content.decode())["traces"][0]["y"]) == 10
    tracking.log_history(run, "loss", [(10, 0.5)])
    chart = chart_json(client.get("/t/acme/charts/metric/", params, **HX).content.decode())
    assert len(chart["traces"][0]["y"]) == 11 and chart["traces"][0]["y"][-1] == 0.5


def test_chart_leaves_out_nan_and_writes_infinity_as_a_gap(client, members, tracking):
    run = tracking.run(
        tracking.experiment("odd"), history={"m": [(0, 1.0), (1, float("nan")), (2, float("inf")), (3, 2.0)]}
    )
    html = (
        login(client, members["viewer"])
        .get("/t/acme/charts/metric/", {"runs": run.run_uuid, "key": "m"}, **HX)
        .content.decode()
    )
    trace = chart_json(html)["traces"][0]
    assert trace["x"] == [0, 2, 3] and trace["y"] == [1.0, None, 2.0]


def test_chart_refuses_too_many_runs_or_no_metric(client, members, churn):
    login(client, members["viewer"])
    assert client.get("/t/acme/charts/metric/", {"runs": churn["runs"][0].run_uuid}, **HX).status_code == 400
    ids = ",".join(f"{i:032x}" for i in range(101))
    assert client.get("/t/acme/charts/metric/", {"runs": ids, "key": "loss"}, **HX).status_code == 400


# --- artifacts --------------------------------------------------------------------------------------------


def browse(client, run, path: str):
    return client.get(f"/t/acme/runs/{run.run_uuid}/artifacts/", {"path": path}, **hx("artifacts"))


def test_artifact_browser_lists_folders_first_and_navigates(client, members, churn):
    run = churn["runs"][0]
    login(client, members["viewer"])
    root = browse(client, run, "").content.decode()
    assert re.findall(r'data-entry="([^"]+)"', root) == [
        "plots",
        "report.json",
        "table.csv",
        "train.log",
        "weights.bin",
    ]
    inside = browse(client, run, "plots").content.decode()
    assert re.findall(r'data-entry="([^"]+)"', inside) == ["loss.png", "shape.svg"]
    assert f'hx-push-url="/t/acme/runs/{run.run_uuid}/?path=plots/loss.png"' in inside
    # Without htmx the same URL lands on the run page at that place.
    plain = client.get(f"/t/acme/runs/{run.run_uuid}/artifacts/", {"path": "plots"})
    assert plain.status_code == 302 and plain["Location"] == f"/t/acme/runs/{run.run_uuid}/?path=plots#artifacts"
    full = client.get(f"/t/acme/runs/{run.run_uuid}/", {"path": "plots"}).content.decode()
    assert 'data-entry="shape.svg"' in full


@pytest.mark.parametrize(
    "path,kind,expect",
    [
        ("plots/loss.png", "image", '<img src="/t/acme/runs/{uuid}/files/plots/loss.png"'),
        ("table.csv", "csv", "<th>id</th><th>score</th>"),
        ("report.json", "json", "{\n  &quot;auc&quot;: 0.9,\n  &quot;classes&quot;: [\n    &quot;a&quot;"),
        ("train.log", "text", "The first 64 KB"),
        ("weights.bin", "binary", "No preview for this kind of file"),
    ],
    ids=["image", "csv", "json", "text", "binary"],
)
def test_artifact_previews(client, members, churn, path, kind, expect):
    run = churn["runs"][0]
    html = browse(login(client, members["viewer"]), run, path).content.decode()
    assert f'data-kind="{kind}"' in html
    assert expect.replace("{uuid}", run.run_uuid) in html


def test_csv_preview_shows_the_first_50_rows(client, members, churn):
    html = browse(login(client, members["viewer"]), churn["runs"][0], "table.csv").content.decode()
    rows = re.findall(r"<tr><td>(\d+)</td><td>\d+</td></tr>", html)
    assert rows == [str(i) for i in range(50)] and "The first 50 rows" in html


def test_text_preview_stops_at_64_kb(client, members, churn):
    html = browse(login(client, members["viewer"]), churn["runs"][0], "train.log").content.decode()
    text = re.search(r'<pre class="file-text">(x*)</pre>', html).group(1)
    assert len(text) == 64 * 1024


@pytest.mark.parametrize(
    "path,content_type,disposition",
    [
        ("plots/loss.png", "image/png", "inline"),
        ("plots/shape.svg", "image/svg+xml", "inline"),
        ("table.csv", "application/octet-stream", "attachment"),
    ],
    ids=["png", "svg", "csv"],
)
def test_artifact_files_are_served_with_their_type(client, members, churn, path, content_type, disposition):
    run = churn["runs"][0]
    response = login(client, members["viewer"]).get(f"/t/acme/runs/{run.run_uuid}/files/{path}")
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith(disposition)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]  # an SVG's script never runs on our origin
    assert b"".join(response.streaming_content)


@pytest.mark.parametrize(
    "path",
    [
        "../../2/other/artifacts/x.txt",
        "plots/../../secret",
        "/etc/passwd",
        "plots/%2e%2e/%2e%2e/x",
        "nope.txt",
        "plots",
    ],
    ids=["dotdot", "inner-dotdot", "absolute", "encoded", "missing", "a-folder"],
)
def test_artifact_paths_outside_the_run_are_not_found(client, members, churn, path):
    run = churn["runs"][0]
    login(client, members["viewer"])
    assert client.get(f"/t/acme/runs/{run.run_uuid}/files/{path}").status_code == 404
    if path != "plots":
        assert browse(client, run, path).status_code == 404
        assert client.get(f"/t/acme/runs/{run.run_uuid}/", {"path": path}).status_code == 404


def test_another_runs_files_are_not_reachable_through_this_run(client, members, churn, tracking):
    first, second = churn["runs"][0], churn["runs"][1]
    tracking.artifact(second, "private.txt", b"second's file")
    login(client, members["viewer"])
    relative = f"../../{second.run_uuid}/artifacts/private.txt"
    assert client.get(f"/t/acme/runs/{first.run_uuid}/files/{relative}").status_code == 404
    assert client.get(f"/t/acme/runs/{second.run_uuid}/files/private.txt").status_code == 200


# --- compare ----------------------------------------------------------------------------------------------


def test_compare_shows_charts_plots_and_a_diff(client, members, churn):
    uuids = [r.run_uuid for r in churn["runs"]]
    html = login(client, members["viewer"]).get("/t/acme/compare/", {"runs": ",".join(uuids)}).content.decode()
    assert re.findall(r'<li><span class="swatch"[^>]*></span><a [^>]+>(\w+)</a>', html) == ["alpha", "beta", "gamma"]
    assert re.findall(r'class="chart-slot" hx-get="/t/acme/charts/metric/\?key=(\w+)"', html) == ["acc", "loss"]
    assert f"""<div class="chart-grid" hx-vals='{{"runs": "{",".join(uuids)}"}}'>""" in html  # sent with each chart
    data = compare_json(html)
    assert data["params"]["lr"] == [0.1, 0.01, 0.001] and data["params"]["optimizer"] == ["adam", "sgd", "adam"]
    assert data["metrics"]["acc"] == [0.91, 0.85, 0.97]
    assert 'data-plot="parallel"' in html and 'data-plot="scatter"' in html
    # The diff highlights what differs: the odd one out among equals, everything when all differ.
    optimizer = re.search(r'data-row="Parameters:optimizer">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td( class="diff")?>(\w+)</td>', optimizer) == [
        ("", "adam"),
        (' class="diff"', "sgd"),
        ("", "adam"),
    ]
    assert 'class="differs" data-row="Metrics (latest):acc"' in html
    assert 'class="same" data-row="Run:Status"' in html
    env = re.search(r'data-row="Run:Environment">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r'<td( class="diff")?>([\w-]+)</td>', env)
    assert cells == [("", "py311-torch2"), ("", "py311-torch2"), (' class="diff"', "py312-torch2")]
    assert 'data-row="Tags:cellar.environment"' not in html  # shown once, as the environment


def test_the_environment_label_tells_apart_runs_on_different_packages():
    environment_label = dashboards.environment_label
    same_summary = {"cellar.environment": "Python 3.11.7, 142 packages"}
    first = environment_label({**same_summary, "cellar.environment_hash": "1f2e3d4c5b6a7980"})
    second = environment_label({**same_summary, "cellar.environment_hash": "aaaabbbbccccdddd"})
    assert first == "Python 3.11.7, 142 packages · 1f2e3d4c" and first != second
    assert environment_label({"mlflow.docker.image.name": "train:3"}) == "train:3"
    assert environment_label({"team": "core"}) is None


def test_compare_metric_choice_and_plot_selects_come_from_the_query(client, members, churn):
    uuids = ",".join(r.run_uuid for r in churn["runs"])
    login(client, members["viewer"])
    html = client.get(
        "/t/acme/compare/", {"runs": uuids, "metric": ["", "loss"], "x": "metrics.acc", "y": "loss"}
    ).content.decode()
    assert re.findall(r'class="chart-slot" hx-get="[^"]+key=(\w+)"', html) == ["loss"]
    assert '<option value="metrics.acc" selected>' in html and "<option selected>loss</option>" in html
    none = client.get("/t/acme/compare/", {"runs": uuids, "metric": ""}).content.decode()
    assert "No metric chosen" in none


def test_compare_accepts_repeated_run_parameters(client, members, churn):
    login(client, members["viewer"])
    response = client.get("/t/acme/compare/", {"run": [r.run_uuid for r in churn["runs"][:2]]})
    assert response.status_code == 200 and len(compare_json(response.content.decode())["runs"]) == 2


def test_compare_is_limited_to_100_runs(client, members, tracking):
    experiment = tracking.experiment("crowd")
    runs = tracking.bulk_runs(experiment, 101, metrics=lambda i: {"acc": i})
    login(client, members["viewer"])
    ok = client.get("/t/acme/compare/", {"runs": ",".join(r.run_uuid for r in runs[:100])})
    assert ok.status_code == 200 and len(compare_json(ok.content.decode())["runs"]) == 100
    too_many = client.get("/t/acme/compare/", {"runs": ",".join(r.run_uuid for r in runs)})
    html = too_many.content.decode()
    assert too_many.status_code == 400
    assert "You asked for 101 runs; a comparison holds at most 100" in html and "compare-data" not in html


def test_compare_with_nothing_selected_says_what_to_do(client, members):
    html = login(client, members["viewer"]).get("/t/acme/compare/").content.decode()
    assert "No runs selected" in html and "Compare selected" in html


@pytest.mark.parametrize("count", [3, 100], ids=["3-runs", "100-runs"])
def test_compare_query_count_is_pinned(client, members, tracking, django_assert_num_queries, count):
    experiment = tracking.experiment("pin")
    runs = tracking.bulk_runs(
        experiment,
        count,
        params=lambda i: {"lr": i, "depth": i % 4},
        metrics=lambda i: {"acc": i / 100, "loss": 1 / (i + 1)},
        tags=lambda i: {"team": "a"},
    )
    login(client, members["viewer"])
    # session, user, team, membership, the runs, runs with experiment, params, tags, latest metrics,
    # the data sets they read and the pipeline steps they reused from the cache (data app)
    with django_assert_num_queries(11):
        response = client.get("/t/acme/compare/", {"runs": ",".join(r.run_uuid for r in runs)})
    assert response.status_code == 200


def test_compare_of_100_runs_and_10_metrics_stays_under_a_megabyte(client, members, tracking):
    experiment = tracking.experiment("heavy")
    runs = tracking.bulk_runs(experiment, 100, params=lambda i: {"lr": i / 1000, "depth": i % 7, "opt": "adam"})
    keys = [f"m{k}" for k in range(10)]
    Metric.objects.bulk_create(
        [
            Metric(run=run, key=key, value=math.sin(s / 7 + k) + run.pk, step=s, timestamp=s)
            for run in runs
            for k, key in enumerate(keys)
            for s in range(150)
        ],
        batch_size=10_000,
    )
    LatestMetric.objects.bulk_create(
        [LatestMetric(run=run, key=key, value=1.0, step=149, timestamp=149) for run in runs for key in keys]
    )
    for run in runs:
        for key in keys:
            tracking.summarize(run, key)
    login(client, members["viewer"])
    ids = ",".join(r.run_uuid for r in runs)
    page = client.get("/t/acme/compare/", {"runs": ids, "metric": keys})
    total = len(page.content)
    per_curve = dashboards.points_per_curve(100, budget=dashboards.CHART_POINT_BUDGET, floor=1)
    assert per_curve < 150  # so the histories are downsampled
    for key in keys:
        chart = client.get("/t/acme/charts/metric/", {"runs": ids, "key": key}, **HX)
        assert all(len(t["x"]) <= per_curve for t in chart_json(chart.content.decode())["traces"])
        total += len(chart.content)
    assert total < 1_000_000, total
