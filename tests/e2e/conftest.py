"""Browser fixtures: one headless Chromium per session, one context per signed-in person.

Playwright's sync API runs an event loop in the test thread, and Django refuses
ORM calls from a thread with a running loop; the tests are synchronous code, so
the guard is switched off for this suite only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.factories import PASSWORD

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CELLAR_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        # Browser tests never skip: a missing browser is a broken machine, said loudly.
        pytest.fail(f"no Chromium at {CHROMIUM}; install it with: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, live_server):
    """open_page() -> a Page in a fresh context (its own cookies) against the live server.

    Each page fails its test on an uncaught JavaScript error or a 5xx response.
    """
    contexts, problems = [], []

    def make() -> Page:
        context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"JS error on {page.url}: {exc}"))
        page.on(
            "response",
            lambda resp: problems.append(f"{resp.status} from {resp.url}") if resp.status >= 500 else None,
        )
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture
def page(open_page) -> Page:
    return open_page()


def snap(page: Page, name: str) -> None:
    """Save a full-page screenshot to test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def visit(page: Page, path: str, name: str, *, status: int = 200, ready: str | None = None) -> None:
    """Open `path`, check the HTTP status, wait for the `ready` selector if given, and screenshot the page."""
    response = page.goto(path)
    assert response is not None and response.status == status, f"{path}: {response and response.status}"
    if ready:
        page.locator(ready).wait_for()
    snap(page, name)


def sign_in(page: Page, username: str, *, shots: str, path: str = "/accounts/login/") -> None:
    """Sign in through the login form, reached from `path` (which may redirect to it).

    Screenshots the form as `<shots>-login` and the page it lands on as `<shots>-signed-in`.
    """
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    snap(page, f"{shots}-login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(username)
    snap(page, f"{shots}-signed-in")
