"""With tokens on: log in through /login, see one's own experiments only, log out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Dialog

from scripts.stack import Stack
from tests.browser.conftest import shot
from tests.conftest import ARTIFACTS
from tests.integration.conftest import embedded_env

pytestmark = pytest.mark.browser


def small(name: str) -> dict[str, Any]:
    return {"preset": "seed-dropout", "overrides": {"name": name, "training": {"epochs": 1}}}


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API alone (experiments stay queued) on the embedded default, with tokens on."""
    env = {**embedded_env(tmp_path_factory.mktemp("login")), "BNLAB_AUTH": "on"}
    stack = Stack(env=env, log_dir=ARTIFACTS / "logs" / "browser-login")
    try:
        stack.start(worker=False)
        yield stack
    finally:
        stack.stop()


def test_log_in_see_only_mine_log_out(browser: Any, auth_stack: Stack) -> None:
    other = auth_stack.create_token("someone-else")
    _, theirs = auth_stack.request("POST", "/api/v1/experiments", small("theirs"), other)
    _, mine = auth_stack.request("POST", "/api/v1/experiments", small("mine"))
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    try:
        # No cookie yet: the dashboard sends the browser to the login form.
        page.goto(f"{auth_stack.url}/")
        page.wait_for_url("**/login?next=%2F")
        page.fill("#token", auth_stack.token or "")
        page.click("button[type=submit]")
        page.wait_for_url(f"{auth_stack.url}/")
        page.wait_for_selector("#experiments tbody tr")
        listed = page.inner_text("#experiments tbody")
        assert "mine" in listed and "theirs" not in listed
        assert page.locator("#experiments tbody tr").count() == 1
        assert page.inner_text("#logout") == "Log out stack-owner"
        shot(page, "logged-in")
        # Another owner's experiment does not exist, as far as this browser can tell.
        response = page.goto(f"{auth_stack.url}/experiments/{theirs['id']}")
        assert response is not None and response.status == 404
        page.goto(f"{auth_stack.url}/experiments/{mine['id']}")
        page.wait_for_selector("#status:text('queued')")
        assert page.locator("#delete").is_hidden()  # cancel first
        # Once cancelled, the Delete button asks, then deletes it with all it stored.
        auth_stack.request("POST", f"/api/v1/experiments/{mine['id']}/cancel")
        page.wait_for_selector("#status:text('cancelled')")
        asked: list[str] = []

        def on_dialog(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.once("dialog", on_dialog)
        page.click("#delete")
        page.wait_for_url(f"{auth_stack.url}/")
        assert asked and "cannot be undone" in asked[0]
        assert auth_stack.request("GET", f"/api/v1/experiments/{mine['id']}")[0] == 404
        # Log out: back to the login page, and the dashboard is closed again.
        page.click("#logout")
        page.wait_for_url("**/login")
        assert not [c for c in context.cookies() if c["name"] == "bnlab_token"]
        page.goto(f"{auth_stack.url}/")
        page.wait_for_url("**/login?next=%2F")
        assert page.locator("#token").is_visible()
    finally:
        context.close()
