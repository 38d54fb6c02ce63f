"""Starting a sweep from the dashboard's form and watching it finish, in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.stack import Stack
from tests.browser.conftest import shot

pytestmark = pytest.mark.browser


def fill(page: Any, url: str, values: str) -> None:
    page.goto(f"{url}/sweeps")
    page.wait_for_selector("#preset option[value=seed-input-scale]", state="attached")
    page.select_option("#preset", "seed-input-scale")
    page.fill("#axis", "training.optimizer.lr")
    page.fill("#values", values)
    page.fill("#overrides", '{"training": {"epochs": 3, "seeds": [0, 1]}}')


def test_start_a_sweep_from_the_form_and_watch_it(page: Any, web_stack: Stack) -> None:
    fill(page, web_stack.url, "0.01, 0.1, -1")
    page.click("#submit")
    page.wait_for_selector("#errors li")
    assert "point 2 (training.optimizer.lr=-1)" in page.inner_text("#errors")

    fill(page, web_stack.url, "0.01, 0.1")
    page.click("#submit")
    page.wait_for_url("**/sweeps/*")
    page.wait_for_selector("#status:text('succeeded')", timeout=240_000)
    assert page.locator("#points tbody tr").count() == 2
    link = page.get_attribute("#points tbody tr:first-child a", "href")
    assert link is not None and link.startswith("/experiments/")
    page.wait_for_function(
        "() => { const i = document.getElementById('sensitivity');"
        " return i.complete && i.naturalWidth > 0 && !i.src.includes('v='); }",
        timeout=60_000,
    )
    page.wait_for_selector("#statements li:text('suits each best')")
    shot(page, "sweep")
    page.goto(f"{web_stack.url}/sweeps")
    page.wait_for_selector("#sweeps tbody tr")
    assert "succeeded" in page.inner_text("#sweeps tbody")
