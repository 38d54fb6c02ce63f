"""Headless Chromium (Debian's) driven by Playwright against a real stack on the embedded default.

Every request to a host other than the stack's loopback address is aborted and recorded, so a
page that needs the internet (a CDN script, a web font) fails here as it would offline.
"""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import Stack
from tests.conftest import ARTIFACTS
from tests.integration.conftest import embedded_env

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SHOTS = ARTIFACTS / "browser"


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API and a worker on the embedded default."""
    env = embedded_env(tmp_path_factory.mktemp("browser"))
    with Stack(env=env, log_dir=ARTIFACTS / "logs" / "browser") as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium; Playwright's own browser download does not work here."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def blocked() -> list[str]:
    """URLs the page tried to fetch from anywhere but the stack."""
    return []


@pytest.fixture
def page(browser: Any, web_stack: Stack, blocked: list[str]) -> Iterator[Any]:
    """A fresh page whose network reaches the stack and nothing else."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    if web_stack.token:
        context.add_cookies(
            [{"name": "bnlab_token", "value": web_stack.token, "url": web_stack.url}]
        )

    def gate(route: Any) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot under tests/artifacts/browser/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
