"""The workers panel on the experiments page shows the stack's worker."""

from __future__ import annotations

import os
from typing import Any

import pytest

from scripts.stack import Stack

pytestmark = pytest.mark.browser


def test_the_panel_lists_the_worker_and_the_queues(
    page: Any, web_stack: Stack, blocked: list
) -> None:
    # A worker's id is host:pid and a random suffix.
    worker_id = f"{os.uname().nodename}:{web_stack.processes['worker'].pid}:"
    page.goto(f"{web_stack.url}/")
    row = page.wait_for_selector(f"#workers tbody tr[data-id^='{worker_id}']", timeout=60_000)
    assert "cpu" in row.inner_text()
    page.wait_for_selector("#queues:has-text('Waiting: gpu')")
    assert not blocked
