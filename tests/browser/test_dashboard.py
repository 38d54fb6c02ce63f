"""A user's path through the dashboard in a real browser, with the internet out of reach."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from scripts.stack import Stack
from tests.browser.conftest import shot

pytestmark = pytest.mark.browser

ALL_PLOTS_LOADED = """() => {
  const plots = [...document.querySelectorAll("img.plot")];
  return plots.length >= 4 && plots.every((img) => img.complete && img.naturalWidth > 0);
}"""


def test_submit_from_new_and_watch_it_finish(page: Any, web_stack: Stack, blocked: list) -> None:
    page.goto(f"{web_stack.url}/new")
    page.wait_for_selector("#preset option[value=seed-bn-mlp]", state="attached")
    page.select_option("#preset", "seed-bn-mlp")
    assert json.loads(page.input_value("#spec"))["name"] == "seed-bn-mlp"
    page.click("#submit")
    page.wait_for_url("**/experiments/*")
    page.wait_for_selector("#status:text('succeeded')", timeout=240_000)
    assert page.inner_text("#percent") == "100%"
    # The data set the worker really used (mnist, or the preset's fallback and why).
    assert page.inner_text("#dataset").startswith(("data set: mnist", "data set: fashion-mnist"))
    assert page.eval_on_selector("#progress", "p => p.value") == 1
    # The last poll after the finish reloads every plot; all of them must arrive as images.
    page.wait_for_function(ALL_PLOTS_LOADED, timeout=60_000)
    # Once finished, the plots are the final ones (no per-poll version in their URLs).
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.plot')].every(i => !i.src.includes('v='))"
    )
    names = page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => i.dataset.plot)")
    assert set(names) == {"loss", "activations", "distributions", "eval"}
    page.wait_for_selector("#findings-table")
    assert page.locator("#runs tbody tr").count() == 2
    shot(page, "experiment")
    page.goto(f"{web_stack.url}/")
    page.wait_for_selector("#experiments tbody tr")
    assert "succeeded" in page.inner_text("#experiments tbody")
    shot(page, "experiments")
    assert blocked == []


def test_new_shows_validation_errors_in_place(page: Any, web_stack: Stack) -> None:
    page.goto(f"{web_stack.url}/new")
    page.wait_for_selector("#preset option[value=seed-dropout]", state="attached")
    page.select_option("#preset", "seed-dropout")
    spec = json.loads(page.input_value("#spec"))
    spec["training"]["epochs"] = 0
    page.fill("#spec", json.dumps(spec, indent=2))
    page.click("#submit")
    page.wait_for_selector("#errors li")
    assert "training.epochs" in page.inner_text("#errors")
    assert page.url.endswith("/new")
    shot(page, "new-with-errors")


def test_compare_overlays_two_experiments(page: Any, web_stack: Stack) -> None:
    ids = []
    for _ in range(2):
        status, body = web_stack.request(
            "POST",
            "/api/v1/experiments",
            {"preset": "seed-dropout", "overrides": {"training": {"epochs": 20, "eval_every": 10}}},
        )
        assert status == 201, body
        ids.append(body["id"])
    for experiment_id in ids:
        web_stack.wait_finished(experiment_id, timeout_s=120)
    page.goto(f"{web_stack.url}/compare?ids={','.join(ids)}")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.plot')].filter(i => i.naturalWidth > 0)"
        ".length === 2",
        timeout=30_000,
    )
    shot(page, "compare")


def test_docs_list_every_operation_offline(page: Any, web_stack: Stack, blocked: list) -> None:
    with urllib.request.urlopen(f"{web_stack.url}/openapi.json", timeout=10) as response:
        schema = json.load(response)
    operations = sum(
        1 for item in schema["paths"].values() for method in item if method in ("get", "post")
    )
    page.goto(f"{web_stack.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    page.wait_for_function(
        f"() => document.querySelectorAll('.opblock').length >= {operations}", timeout=30_000
    )
    text = page.inner_text(".swagger-ui")
    assert "/api/v1/experiments/{experiment_id}/plots/loss.{fmt}" in text
    shot(page, "docs")
    assert blocked == [], f"the docs reached for the internet: {blocked}"
