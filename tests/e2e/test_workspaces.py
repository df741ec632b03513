"""Notebook workspaces end to end, in a real browser, on the real processes (issue 8, "Done when").

One JupyterHub (notebooks_ext/hub/jupyterhub_config.py, configurable-http-proxy from npm, the
local spawner) signs in through this test's live Cellar; one user server serves the whole flow:
sign in to Cellar -> the Workspace page starts the server (202, polled) -> JupyterLab through
the hub's OAuth -> the kernel's SDK already knows Cellar -> select the cells -> "Promote to
production" -> the dialog's inferred steps -> confirm with "run now" -> the version is
production and its run (real control worker and pool agent) succeeds -> the side panel shows it.
Then the promote handler's XSRF and authentication checks, another user kept out of this
server, kernel token renewal, and the same user demoted to viewer seeing "Save version".
Screenshots go to test-artifacts/screenshots/workspace-*.png (docs/workspaces.md uses them).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from django.test import Client as DjangoClient
from playwright.sync_api import Page, expect

from cellar_server.pipelines.models import Pipeline, PipelineRun
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Membership
from cellar_server.teams.roles import scopes_for
from cellar_server.workspaces import promote as workspace_promote
from cellar_server.workspaces.hub import HubClient
from tests.e2e.conftest import sign_in, snap
from tests.engine_e2e.conftest import engine, stack, wait_for  # noqa: F401  (fixtures: control worker + agent)
from tests.factories import TeamFactory, UserFactory, add_member
from tests.pipelines.conftest import code_cell, markdown_cell, notebook

pytestmark = [pytest.mark.e2e, pytest.mark.processes]

REPO = Path(__file__).resolve().parents[2]
HUB_BIN = REPO / ".venv-hub" / "bin"
HUB_PORT, HUB_INTERNAL_PORT, PROXY_API_PORT = 18811, 18812, 18813
HUB = f"http://127.0.0.1:{HUB_PORT}"
CLIENT_ID = "cellar-e2e-hub"
LAB_TIMEOUT = 90_000


class Hub:
    def __init__(self, home: Path, secret: str, token: str, proc: subprocess.Popen, log: Path):
        self.home, self.secret, self.token, self.proc, self.log = home, secret, token, proc, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def workspace(self, username: str) -> Path:
        return self.home / "workspaces" / username


@pytest.fixture(scope="module")
def hub(live_server, tmp_path_factory):
    from django.conf import settings

    if not (HUB_BIN / "jupyterhub").exists():
        pytest.fail("the hub's environment is missing: run `make hub-install`", pytrace=False)
    home = tmp_path_factory.mktemp("hub")
    secret, token = secrets.token_urlsafe(32), secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLAR_") and k not in ("DATABASE_URL",)}
    env.update(
        CELLAR_HOME=str(home),
        CELLAR_API_URL=live_server.url,
        CELLAR_PUBLIC_URL=live_server.url,
        CELLAR_HUB_URL=HUB,
        CELLAR_HUB_INTERNAL_PORT=str(HUB_INTERNAL_PORT),
        CELLAR_HUB_PROXY_API_PORT=str(PROXY_API_PORT),
        CELLAR_HUB_OAUTH_JSON=json.dumps({"client_id": CLIENT_ID, "client_secret": secret}),
        CELLAR_HUB_API_TOKEN=token,
        CELLAR_TOKEN_CHECK_SECONDS="1",
        PATH=f"{HUB_BIN}:{env.get('PATH', '')}",
    )
    log = home / "hub.log"
    proc = subprocess.Popen(
        [str(HUB_BIN / "jupyterhub"), "-f", str(REPO / "notebooks_ext" / "hub" / "jupyterhub_config.py")],
        cwd=home,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = Hub(home, secret, token, proc, log)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"the hub exited:\n{started.output()}"
        try:
            if requests.get(f"{HUB}/hub/api/", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"the hub did not start:\n{started.output()}"
        time.sleep(0.3)
    saved = {k: getattr(settings, k) for k in ("CELLAR_HUB_API_URL", "CELLAR_HUB_PUBLIC_URL", "CELLAR_PUBLIC_URL")}
    settings.CELLAR_HUB_API_URL = settings.CELLAR_HUB_PUBLIC_URL = HUB
    settings.CELLAR_PUBLIC_URL = live_server.url
    os.environ["CELLAR_HUB_API_TOKEN"] = token
    try:
        yield started
    finally:
        os.environ.pop("CELLAR_HUB_API_TOKEN", None)
        for key, value in saved.items():
            setattr(settings, key, value)
        os.killpg(proc.pid, signal.SIGTERM)  # the hub stops its proxy and the user servers too
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def hub_app(hub, transactional_db):
    """The hub's OAuth client as cellar_hub_setup makes it, with the secret the hub was given."""
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    Application.objects.create(
        name="jupyterhub",
        client_id=CLIENT_ID,
        client_secret=hub.secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        algorithm=Application.RS256_ALGORITHM,
        redirect_uris=f"{HUB}/hub/oauth_callback",
        skip_authorization=True,
    )
    return hub


def sample_notebook() -> dict:
    return notebook(
        markdown_cell("# Demo\nA notebook that becomes a pipeline."),
        code_cell('from cellar.client import Client\nprint("whoami:", Client().whoami()["username"])', "skip"),
        code_cell("n = 10", "parameters"),
        code_cell("rows = list(range(n))", "step:load"),
        code_cell("total = sum(r * 2 for r in rows)\nprint(total)", "step:total"),
    )


def prepare_workspace(hub: Hub, username: str) -> None:
    """The sample notebook, and JupyterLab told not to ask about news (its toast covers buttons)."""
    home = hub.workspace(username)
    home.mkdir(parents=True, exist_ok=True)
    (home / "demo.ipynb").write_text(json.dumps(sample_notebook()))
    settings_dir = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings_dir.mkdir(parents=True, exist_ok=True)
    (settings_dir / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')


def open_notebook(page: Page, username: str) -> None:
    page.goto(f"{HUB}/user/{username}/lab/tree/demo.ipynb")
    page.locator(".jp-Notebook .jp-Cell").nth(4).wait_for(timeout=LAB_TIMEOUT)
    expect(page.locator(".jp-NotebookPanel-toolbar [data-command='cellar:promote-cells']")).to_be_visible(
        timeout=LAB_TIMEOUT
    )


def run_cell(page: Page, index: int, *, expect_text: str) -> None:
    """Run one cell (Shift+Enter); again if a kernel still starting dropped the first request."""
    output = page.locator(".jp-OutputArea-output").filter(has_text=expect_text)
    for _attempt in range(3):
        expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=LAB_TIMEOUT)
        page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            expect(output).to_be_visible(timeout=30_000)
            return
        except AssertionError:
            snap(page, f"workspace-run-cell-retry-{_attempt}")
    expect(output).to_be_visible()


def open_promote_dialog(page: Page) -> None:
    notebook_panel = page.locator(".jp-NotebookPanel:visible")
    notebook_panel.locator(".jp-Cell").first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+a")  # command mode: select every cell
    page.locator(".jp-NotebookPanel-toolbar [data-command='cellar:promote-cells']").click()
    expect(page.locator(".jp-Dialog [data-testid='cellar-preview']")).to_be_visible(timeout=30_000)


def test_sign_in_workspace_lab_promote_run_and_viewer(page, open_page, hub_app, engine, live_server):  # noqa: F811
    hub = hub_app
    team = TeamFactory(slug="acme", name="Acme ML")
    alice = add_member(team, UserFactory(username="alice"), "admin")
    add_member(team, UserFactory(username="olga"), "owner")
    UserFactory(username="vic")
    prepare_workspace(hub, "alice")

    # Only a user's hub token buys kernel tokens: not a service's, not a made-up one (asked in-process).
    for bad in (hub.token, "not-a-hub-token"):
        refused = DjangoClient().post("/api/v1/workspaces/kernel-tokens/", HTTP_AUTHORIZATION=f"token {bad}")
        assert refused.status_code == 401, refused.content

    # --- sign in to Cellar, start the workspace from its page (202, then polled) ----------------------
    sign_in(page, "alice", shots="workspace")
    page.goto(f"{live_server.url}/t/acme/workspace/")
    expect(page.get_by_test_id("workspace-state")).to_have_text("stopped")
    page.get_by_test_id("profile-cpu").check()
    snap(page, "workspace-page-stopped")
    with page.expect_response(re.compile(r"/workspace/start/$")) as started:
        page.get_by_test_id("start-server").click()
    assert started.value.status in (200, 202)
    expect(page.get_by_test_id("workspace-state")).to_have_text("running", timeout=LAB_TIMEOUT)
    snap(page, "workspace-page-running")
    assert HubClient().user("alice")["groups"] == ["acme"]  # Cellar's teams, set when it started the server
    assert Membership.all_teams.filter(user=alice).exists()

    # --- into JupyterLab through the hub's sign-in (Cellar is its OpenID Connect provider) --------------
    page.get_by_test_id("open-lab").click()
    page.locator(".jp-LabShell").wait_for(timeout=LAB_TIMEOUT)
    open_notebook(page, "alice")

    # The kernel's SDK already knows Cellar and holds a token: run the first (skip-tagged) cell.
    run_cell(page, 1, expect_text="whoami: alice")
    snap(page, "workspace-lab-notebook")

    # The button is in the cell toolbar and the cell context menu too.
    page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(3).locator(".jp-InputPrompt").click()
    expect(page.locator(".jp-cell-toolbar [data-command='cellar:promote-cells']").first).to_be_visible()
    page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(3).locator(".jp-InputPrompt").click(button="right")
    expect(page.locator(".lm-Menu-item[data-command='cellar:promote-cells']")).to_be_visible()
    page.keyboard.press("Escape")

    # --- promote: the dialog shows the inferred steps before anything is sent -----------------------
    open_promote_dialog(page)
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator("[data-testid='cellar-steps'] tr[data-step='load']")).to_be_visible()
    expect(dialog.locator("[data-testid='cellar-steps'] tr[data-step='total']")).to_contain_text("rows ← load")
    expect(dialog.locator("[data-testid='cellar-dag'] [data-step='total']")).to_be_visible()
    expect(dialog.locator("[data-testid='cellar-parameters']")).to_contain_text("n")
    expect(dialog.locator("[data-testid='cellar-target']")).to_contain_text("new pipeline")
    dialog.get_by_test_id("cellar-run-now").check()
    snap(page, "workspace-promote-dialog")
    accept = dialog.locator(".jp-mod-accept")
    expect(accept).to_have_text("Promote to production")
    accept.click()
    promoted = page.get_by_test_id("cellar-promoted")
    expect(promoted).to_contain_text("Production now runs", timeout=60_000)
    expect(page.get_by_test_id("cellar-run-link")).to_be_visible()
    snap(page, "workspace-promoted")
    page.locator(".jp-Dialog .jp-mod-accept").click()

    pipeline = Pipeline.all_teams.get(team=team, name="demo")
    assert pipeline.production is not None and pipeline.production.number == 1
    run = PipelineRun.all_teams.get(pipeline=pipeline)
    wait_for(
        lambda: PipelineRun.all_teams.get(pk=run.pk).state in ("succeeded", "failed"),
        what="the promoted run to finish",
        stack=engine,
    )
    assert PipelineRun.all_teams.get(pk=run.pk).state == "succeeded"

    # The side panel lists the notebook's pipeline runs with their state.
    page.locator(".jp-SideBar [data-id='cellar-runs']").click()
    expect(page.get_by_test_id("cellar-runs").get_by_test_id("cellar-run-state").first).to_have_text(
        "succeeded", timeout=30_000
    )
    snap(page, "workspace-runs-panel")

    # --- "Open in notebook" from a deliberately failed run: the reproducing notebook opens in Lab ----
    failing = notebook(
        code_cell("rows = [1, 2, 3]", "step:load"),
        code_cell("ratio = sum(rows) / (len(rows) - 3)", "step:boom"),
    )
    broken = workspace_promote.promote(
        team=team,
        actor=Actor(user=alice),
        scopes=scopes_for("admin"),
        notebook=failing,
        cells=None,
        pipeline_name="broken",
        notebook_name="broken.ipynb",
        production=True,
        run_now=True,
    ).run
    wait_for(
        lambda: PipelineRun.all_teams.get(pk=broken.pk).state == "failed", what="the broken run to fail", stack=engine
    )
    lab = page.context.new_page()  # the first tab holds unsaved edits; leave it alone
    lab.goto(f"{live_server.url}/t/acme/workspace/open/?pipeline=broken&run={broken.number}&step=boom")
    expect(lab).to_have_url(re.compile(r"/tree/pulled/broken-1-boom\.ipynb"), timeout=LAB_TIMEOUT)
    expect(lab.locator(".jp-Cell").filter(has_text="len(rows) - 3")).to_be_visible(timeout=LAB_TIMEOUT)
    expect(lab.locator(".jp-Cell").filter(has_text="ZeroDivisionError").first).to_be_visible()
    snap(lab, "workspace-open-in-notebook")
    assert (hub.workspace("alice") / "pulled" / "broken-1-boom.ipynb").exists()
    lab.close()

    # --- the handler: XSRF required, authentication required --------------------------------------
    preview = f"{HUB}/user/alice/cellar/preview"
    body = json.dumps({"team": "acme", "pipeline": "demo", "notebook": sample_notebook()})
    headers = {"Content-Type": "application/json"}
    assert page.request.post(preview, data=body, headers=headers).status == 403  # cookie, no XSRF token
    xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    allowed = page.request.post(preview, data=body, headers={**headers, "X-XSRFToken": xsrf})
    assert allowed.status == 200 and allowed.json()["target"]["production"]["number"] == 1
    other_team = page.request.post(
        preview, data=json.dumps({**json.loads(body), "team": "rival"}), headers={**headers, "X-XSRFToken": xsrf}
    )
    assert other_team.status == 403 and other_team.json()["error"]["code"] == "not_a_member"
    # Cellar is the source of truth: joining a team there reaches the running server (a renewal on demand).
    # A missing team's token is fetched at most once per check interval (1 s here), so ask until it is.
    add_member(TeamFactory(slug="rival"), alice, "editor")
    joined = wait_for(
        lambda: (
            (
                answer := page.request.post(
                    preview,
                    data=json.dumps({**json.loads(body), "team": "rival"}),
                    headers={**headers, "X-XSRFToken": xsrf},
                )
            ).status
            == 200
            and answer
        ),
        timeout=30,
        what="the server to fetch a token for the team just joined",
    )
    assert joined.json()["target"] == {"name": "demo", "exists": False, "production": None}
    anonymous = requests.post(preview, data=body, headers=headers, timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 403)

    # --- another user reaches only their own server ------------------------------------------------
    intruder = open_page()
    sign_in(intruder, "vic", shots="workspace-intruder")
    response = intruder.goto(f"{HUB}/user/alice/lab")
    assert response is not None and response.status == 403, intruder.url
    expect(intruder.locator(".jp-LabShell")).to_have_count(0)
    intruder.context.close()

    # --- kernel tokens are renewed while the server runs ----------------------------------------------
    token_path = hub.workspace("alice") / ".cellar" / "token.json"
    before = json.loads(token_path.read_text())
    token_path.write_text(json.dumps({**before, "renew_after": "2000-01-01T00:00:00Z"}))
    renewed = wait_for(
        lambda: (
            (data := json.loads(token_path.read_text())).get("tokens", {}).get("acme") != before["tokens"]["acme"]
            and data
        ),
        timeout=60,
        what="the server extension to renew the kernel tokens",
    )
    me = requests.get(
        f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Bearer {renewed['tokens']['acme']}"}, timeout=30
    )
    assert me.status_code == 200 and me.json()["username"] == "alice"

    # --- as a viewer, the same button saves a version and says who can promote -----------------------
    Membership.all_teams.filter(user=alice, team=team).update(role="viewer")
    open_promote_dialog(page)
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-mod-accept")).to_have_text("Save version")
    expect(dialog.get_by_test_id("cellar-who-promotes")).to_contain_text("olga")
    snap(page, "workspace-save-version")
    dialog.locator(".jp-mod-reject").click()

    # --- unsaved edits are what is sent; a compile error is shown on its cell ------------------------
    page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(4).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\nprint(missing_name)")
    page.keyboard.press("Escape")
    open_promote_dialog(page)
    dialog = page.locator(".jp-Dialog")
    expect(dialog.get_by_test_id("cellar-problems")).to_contain_text("missing_name")
    expect(page.locator(".jp-Cell.cellar-problem")).to_have_count(1)
    expect(page.locator(".jp-Cell").nth(4).get_by_test_id("cellar-cell-problem")).to_contain_text("missing_name")
    snap(page, "workspace-compile-error")
    dialog.locator(".jp-mod-reject").click()

    # --- stop from the Workspace page ----------------------------------------------------------------
    page.goto(f"{live_server.url}/t/acme/workspace/")
    page.get_by_test_id("stop-server").click()
    expect(page.get_by_test_id("workspace-state")).to_have_text("stopped", timeout=60_000)
