"""The article's claims, measured through the service with three seeds and small budgets."""

from __future__ import annotations

import pytest

from scripts.stack import Stack

pytestmark = pytest.mark.integration

SEEDS = [0, 1, 2]


def run_preset(stack: Stack, preset: str, overrides: dict) -> dict:
    status, experiment = stack.request(
        "POST", "/api/v1/experiments", {"preset": preset, "overrides": overrides}
    )
    assert status == 201, experiment
    final = stack.wait_finished(experiment["id"], timeout_s=300)
    assert final["status"] == "succeeded", final.get("error")
    return final


def pair(findings: dict, a: str, b: str) -> dict:
    return next(p for p in findings["pairs"] if (p["a"], p["b"]) == (a, b))


def test_bn_lowers_early_training_loss_in_every_seed(pg_stack: Stack) -> None:
    final = run_preset(
        pg_stack,
        "seed-bn-mlp",
        {"training": {"epochs": 1, "seeds": SEEDS}, "probes": {"every": 10}},
    )
    status, findings = pg_stack.request("GET", f"/api/v1/experiments/{final['id']}/findings")
    assert status == 200 and findings == final["findings"]
    early = pair(findings, "plain", "bn")["measures"]["early_train_loss"]
    assert early["seeds"] == 3 and early["b_lower_in"] == 3
    assert findings["variants"]["bn"]["early_train_loss"]["n"] == 3
    # Measured and reported, whatever it says: BN's hidden distributions drift this much.
    assert "drift:hidden1.linear" in findings["variants"]["plain"]
    assert "drift:hidden1.bn" in findings["variants"]["bn"]


def test_dropout_narrows_the_train_test_gap_in_every_seed(pg_stack: Stack) -> None:
    final = run_preset(pg_stack, "seed-dropout", {"training": {"seeds": SEEDS}})
    findings = final["findings"]
    gap = pair(findings, "plain", "dropout-0.2")["measures"]["train_test_gap"]
    assert gap["seeds"] == 3 and gap["b_lower_in"] == 3
    statements = pair(findings, "plain", "dropout-0.2")["statements"]
    assert any(s.startswith("train_test_gap: dropout-0.2") for s in statements)
