"""The New page's spec builder: a form from the API's JSON Schema, the JSON beside it, the API's
422s at the fields they name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts.stack import Stack
from tests.browser.conftest import shot

pytestmark = pytest.mark.browser

LR = '[data-path="training.optimizer.lr"]'


def open_preset(page: Any, stack: Stack, preset: str) -> None:
    page.goto(f"{stack.url}/new")
    page.wait_for_selector(f"#preset option[value={preset}]", state="attached")
    page.select_option("#preset", preset)
    page.wait_for_selector(LR)


def spec_json(page: Any) -> dict[str, Any]:
    return dict(json.loads(page.input_value("#spec")))


def experiment_count(stack: Stack) -> int:
    status, body = stack.request("GET", "/api/v1/experiments?limit=200")
    assert status == 200
    return len(body["items"])


def test_build_a_variant_in_the_form_and_watch_it_train(
    page: Any, web_stack: Stack, blocked: list
) -> None:
    open_preset(page, web_stack, "seed-bn-mlp")
    # Variants are rows of the form, built from the schema: kind, hidden sizes, BN, dropout.
    assert page.locator('fieldset.row[data-path^="variants."]').count() == 2
    assert page.input_value('[data-path="variants.1.model.batchnorm"]') == "before_activation"
    assert page.input_value('[data-path="variants.0.model.hidden"]') == "48, 24"

    page.click('[data-add="variants"]')
    page.fill('[data-path="variants.2.name"]', "dropout-0.3")
    page.fill('[data-path="variants.2.model.hidden"]', "48, 24")
    page.fill('[data-path="variants.2.model.dropout"]', "0.3")
    page.fill(LR, "0.05")
    # The JSON beside the form follows every edit.
    spec = spec_json(page)
    assert spec["variants"][2]["model"]["dropout"] == 0.3
    assert spec["variants"][2]["model"]["kind"] == "mlp"
    assert spec["training"]["optimizer"]["lr"] == 0.05

    # ...and the form follows the JSON: an edit there shows up in the form.
    spec["training"]["epochs"] = 1
    page.fill("#spec", json.dumps(spec, indent=2))
    assert page.input_value('[data-path="training.epochs"]') == "1"
    assert page.input_value('[data-path="variants.2.model.dropout"]') == "0.3"
    shot(page, "spec-builder")

    page.click("#submit")
    page.wait_for_url("**/experiments/*")
    experiment_id = page.url.rsplit("/", 1)[1]
    page.wait_for_function(
        "() => ['running', 'succeeded'].includes(document.querySelector('#status').textContent)",
        timeout=120_000,
    )
    page.wait_for_function(
        "() => document.querySelector('#progress').value > 0 ||"
        " document.querySelector('#status').textContent === 'succeeded'",
        timeout=240_000,
    )
    status, stored = web_stack.request("GET", f"/api/v1/experiments/{experiment_id}")
    assert status == 200
    assert [v["name"] for v in stored["spec"]["variants"]] == ["plain", "bn", "dropout-0.3"]
    assert stored["spec"]["variants"][2]["model"]["dropout"] == 0.3
    assert stored["spec"]["training"]["optimizer"]["lr"] == 0.05
    assert blocked == []


def test_copy_and_remove_variants_and_switch_a_model_kind(page: Any, web_stack: Stack) -> None:
    open_preset(page, web_stack, "seed-dropout")
    assert page.locator('fieldset.row[data-path^="variants."]').count() == 3
    page.click('[data-copy="variants.0"]')
    assert [v["name"] for v in spec_json(page)["variants"]][:2] == ["plain", "plain-copy"]
    page.click('[data-remove="variants.1"]')
    page.click('[data-remove="variants.1"]')
    assert [v["name"] for v in spec_json(page)["variants"]] == ["plain", "dropout-0.5-0.2"]
    page.select_option('[data-path="variants.1.model.kind"]', "cnn")
    # A CNN's fields replace the MLP's: conv blocks, as rows of their own.
    page.wait_for_selector('[data-path="variants.1.model.blocks.0.channels"]')
    model = spec_json(page)["variants"][1]["model"]
    assert model["kind"] == "cnn" and len(model["blocks"]) == 1 and "hidden" not in model


def test_a_bad_value_shows_the_apis_message_at_its_field(page: Any, web_stack: Stack) -> None:
    before = experiment_count(web_stack)
    open_preset(page, web_stack, "seed-bn-mlp")
    page.fill(LR, "-0.01")
    page.click("#submit")
    message = page.locator('[data-error="training.optimizer.lr"]')
    message.wait_for(state="visible")
    assert "greater than 0" in message.inner_text()
    assert page.locator(f"{LR}.invalid").count() == 1
    # A variant's field too, inside the model's union (its "mlp" tag is not a path).
    page.fill('[data-path="variants.0.model.dropout"]', "1.5")
    page.click("#submit")
    dropout = page.locator('[data-error="variants.0.model.dropout"]')
    dropout.wait_for(state="visible")
    assert "less than 1" in dropout.inner_text()
    assert page.url.endswith("/new")
    assert experiment_count(web_stack) == before
    shot(page, "spec-builder-errors")
