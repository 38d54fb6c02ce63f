"""The experiments list pages: a hundred at a time, and older ones on request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.stack import Stack
from tests.conftest import ARTIFACTS
from tests.integration.conftest import embedded_env

pytestmark = pytest.mark.browser

SMALL = {
    "name": "crowd",
    "dataset": {"name": "digits"},
    "variants": [{"name": "plain", "model": {"kind": "mlp", "hidden": [8]}}],
    "training": {"epochs": 1},
}
EXPERIMENTS = 130


@pytest.fixture(scope="module")
def crowded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API alone (no worker, so everything stays queued) with 130 experiments."""
    env = embedded_env(tmp_path_factory.mktemp("crowded"))
    stack = Stack(env=env, log_dir=ARTIFACTS / "logs" / "crowded")
    try:
        stack.start(worker=False)
        for index in range(EXPERIMENTS):
            status, _ = stack.request("POST", "/api/v1/experiments", {**SMALL, "name": f"e{index}"})
            assert status == 201
        yield stack
    finally:
        stack.stop()


def test_the_list_shows_a_hundred_then_older_ones_on_request(
    page: Any, crowded_stack: Stack
) -> None:
    page.goto(f"{crowded_stack.url}/")
    page.wait_for_function("() => document.querySelectorAll('#experiments tbody tr').length > 0")
    rows = page.locator("#experiments tbody tr")
    assert rows.count() == 100
    assert rows.first.locator("a").inner_text() == f"e{EXPERIMENTS - 1}"  # newest first
    page.click("#show-older")
    page.wait_for_function(
        f"() => document.querySelectorAll('#experiments tbody tr').length === {EXPERIMENTS}"
    )
    assert rows.last.locator("a").inner_text() == "e0"
    assert page.locator("#show-older").is_hidden()
