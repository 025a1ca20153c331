"""Real-browser tests: Debian's Chromium, driven by Playwright, against a live dashboard whose
Allo is the sandbox served on a loopback socket.

Without Chromium these tests are skipped with a message saying how to enable them; with
REQUIRE_BROWSER_TESTS=1 (as .ci/run sets) a missing browser is a failure instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from dashboard.allo.client import build_client, install_client
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.server import SandboxServer
from tests.conftest import sandbox_api_key

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the test
# itself (creating users) are still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "a long and unguessable pass phrase"

HOW_TO_ENABLE = (
    f"Chromium was not found at {CHROMIUM}. Install Debian's Chromium "
    "(`apt-get update && apt-get install -y chromium`) or set CHROMIUM_PATH to run the "
    "browser tests."
)


def _browser_required() -> bool:
    return os.environ.get("REQUIRE_BROWSER_TESTS", "") not in {"", "0", "false"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if _browser_required():
            pytest.fail(HOW_TO_ENABLE)
        pytest.skip(HOW_TO_ENABLE)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def live_allo(live_server: Any) -> Iterator[SandboxServer]:
    """The sandbox on a loopback port, with the live dashboard's Allo client pointed at it.

    Simulated dialing is off: tests advance it with ``live_allo.sandbox.dial_step()``.
    """
    with SandboxServer(Sandbox(api_key=sandbox_api_key()), port=0, dial_interval=0) as server:
        client = build_client(base_url=server.url, api_key=sandbox_api_key(), read_timeout=3.0)
        previous = install_client(client)
        try:
            yield server
        finally:
            install_client(previous)
            client.close()


@pytest.fixture
def manager_account(transactional_db: None) -> User:
    return User.objects.create_superuser(
        username="camille", email="camille.lefevre@lumen-energie.fr", password=PASSWORD
    )


@pytest.fixture
def page(
    request: pytest.FixtureRequest, chromium: Any, live_server: Any, live_allo: SandboxServer
) -> Iterator[Any]:
    """A fresh browser tab (1280x900, English) on the live dashboard; screenshots on failure."""
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900},
        locale="en-US",
        extra_http_headers={"Accept-Language": "en"},
        base_url=live_server.url,
    )
    context.set_default_timeout(8000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    tab.csp_problems = problems
    yield tab
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not problems, problems


def sign_in(page: Any, username: str = "camille", password: str = PASSWORD) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
