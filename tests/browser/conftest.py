"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser), screenshots
saved under test-artifacts/browser/ (a failing test also leaves ``<test>-failure.png`` there).

The tests skip, saying why, only when Chromium or the playwright package is absent. Another Chromium
binary can be named with LSC_TEST_CHROMIUM.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ls_companion.localserver import LabelStudioProcess
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
#: Chromium's own background connections (updates, sync, QUIC) are refused on a closed network: switched
#: off. No GPU and no user namespaces for the sandbox in containers and CI runners.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1440, "height": 1200}

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so the page fixture knows whether its test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def failed(node: pytest.Item) -> bool:
    return any(report.failed for report in node.stash.get(_REPORTS, {}).values())


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/browser/, emptied of the previous run's screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    executable = Path(os.environ.get("LSC_TEST_CHROMIUM") or DEFAULT_CHROMIUM)
    if importlib.util.find_spec("playwright") is None:
        pytest.skip(
            "the playwright package is not installed (it is in the dev extra: pip install -e '.[dev]')"
        )
    if not executable.is_file() or not os.access(executable, os.X_OK):
        pytest.skip(f"no Chromium at {executable} (Debian: apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def save_screenshot(page: Page, path: Path) -> None:
    """A full-page screenshot; never raises (a failure screenshot must not hide the test's error)."""
    try:
        page.screenshot(path=str(path), full_page=True)
    except Exception as exc:  # the page may be gone already
        path.with_suffix(".txt").write_text(f"no screenshot: {exc}\n")


@pytest.fixture(scope="session")
def ls_login(
    chromium: Browser,
    label_studio: LabelStudioProcess,
    artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Log in through Label Studio's own login form once; the cookies other pages start from."""
    if not label_studio.password:
        pytest.skip("LSC_TEST_LABEL_STUDIO_URL is set: the browser tests need the harness's admin password")
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(f"{label_studio.url}/user/login")
        page.locator("#email").fill(label_studio.username)
        page.locator("#password").fill(label_studio.password)
        save_screenshot(page, artifacts / "00-login-form.png")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/user/login" not in url, timeout=30_000)
        # The landing page differs (Home with no projects, else the project list): ask who we are instead,
        # with the browser's session cookie.
        whoami = page.request.get(f"{label_studio.url}/api/current-user/whoami")
        assert whoami.ok, whoami.status
        assert whoami.json()["email"] == label_studio.username
        expect(page.get_by_test_id("userpic").first).to_be_visible(timeout=30_000)  # the app's header
        save_screenshot(page, artifacts / "00-logged-in.png")
        state = tmp_path_factory.mktemp("browser") / "storage-state.json"
        context.storage_state(path=str(state))
    except Exception:
        save_screenshot(page, artifacts / "login-failure.png")
        raise
    finally:
        context.close()
    return state


@pytest.fixture
def page(
    chromium: Browser, ls_login: Path, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A signed-in page of its own; a full-page screenshot is saved when the test fails."""
    context = chromium.new_context(viewport=VIEWPORT, storage_state=str(ls_login))
    context.set_default_timeout(30_000)  # goto, click, ...: bounded, generous
    page = context.new_page()
    try:
        yield page
    finally:
        if failed(request.node):
            save_screenshot(page, artifacts / f"{request.node.name}-failure.png")
        context.close()
