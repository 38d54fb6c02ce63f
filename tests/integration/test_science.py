"""Issue 13's presets through the service: probes stored, findings and plots read back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts.stack import Stack
from tests.integration.test_plots_api import get

pytestmark = pytest.mark.integration

SEEDS = [0, 1, 2]
# Small: a few dozen steps per run, probes every few steps.
FIG1 = {
    "dataset": {"train_size": 1200, "test_size": 300},
    "training": {"epochs": 3, "seeds": SEEDS},
    "probes": {"every": 20, "unit_input": {"every": 10, "examples": 200}},
}
SMOOTHNESS = {
    "dataset": {"train_size": 1024, "test_size": 256},
    "training": {"epochs": 2, "seeds": SEEDS},
    "probes": {"every": 8, "landscape": {"every": 4}, "ics": {"every": 4}, "norms": {"every": 4}},
}
SMOOTHNESS_VARIANTS = ["plain", "bn", "bn-noisy", "deep-plain", "deep-bn", "deep-bn-noisy"]


@pytest.fixture(scope="module")
def studies(stack: Stack) -> dict[str, dict[str, Any]]:
    """Both presets, submitted together and trained to the end."""
    ids = {}
    for preset, overrides in (("bn-paper-fig1", FIG1), ("bn-smoothness", SMOOTHNESS)):
        status, body = stack.request(
            "POST", "/api/v1/experiments", {"preset": preset, "overrides": overrides}
        )
        assert status == 201, body
        ids[preset] = body["id"]
    done = {preset: stack.wait_finished(i, timeout_s=600) for preset, i in ids.items()}
    for preset, experiment in done.items():
        assert experiment["status"] == "succeeded", (preset, experiment.get("error"))
    return done


def pair(findings: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    return next(p for p in findings["pairs"] if (p["a"], p["b"]) == (a, b))


def test_fig1_findings_give_the_unit_input_movement_and_accuracy_race(
    stack: Stack, studies: dict[str, dict[str, Any]]
) -> None:
    experiment = studies["bn-paper-fig1"]
    status, findings = stack.request("GET", f"/api/v1/experiments/{experiment['id']}/findings")
    assert status == 200
    for variant in ("plain", "bn"):
        for p in (15, 50, 85):
            moved = findings["variants"][variant][f"unit_input_p{p}_moved"]
            assert moved["n"] == 3 and moved["mean"] >= 0
    statements = pair(findings, "plain", "bn")["statements"]
    assert any(s.startswith("unit_input_p50_moved: bn") and "of 3 seeds" in s for s in statements)
    for level in findings["accuracy_levels"]:
        assert findings["variants"]["bn"][f"steps_to_test_accuracy:{level:g}"]["n"] == 3
    run = next(r for r in experiment["runs"] if r["variant"] == "bn")
    status, metrics = stack.request("GET", f"/api/v1/runs/{run['id']}/metrics?key=unit_input_p15")
    assert status == 200
    assert metrics["series"]["unit_input_p15"]["steps"] == list(range(10, 61, 10))
    # No landscape probe here: no landscape plot either, and asking for one says why.
    status, _, body = get(stack, f"/api/v1/experiments/{experiment['id']}/plots")
    assert status == 200 and "landscape" not in json.loads(body)["plots"]
    status, _, body = get(stack, f"/api/v1/experiments/{experiment['id']}/plots/landscape.png")
    assert status == 422 and b"probes.landscape" in body


def test_smoothness_findings_say_which_variant_is_lower_in_how_many_seeds(
    stack: Stack, studies: dict[str, dict[str, Any]]
) -> None:
    findings = studies["bn-smoothness"]["findings"]
    measures: tuple[str, ...] = ("landscape_loss_range", "landscape_grad_change", "landscape_beta")
    measures += ("ics_l2", "ics_cosine", "grad_norm")
    for variant in SMOOTHNESS_VARIANTS:
        for measure in measures:
            assert findings["variants"][variant][measure]["n"] == 3, (variant, measure)
    compared = pair(findings, "plain", "bn")
    for measure in measures:
        counted = compared["measures"][measure]
        assert counted["seeds"] == 3
        assert counted["b_lower_in"] + counted["b_higher_in"] == 3
    assert any(s.startswith("landscape_beta: bn ") for s in compared["statements"])
    assert len(findings["pairs"]) == 15


def test_smoothness_plots_read_back(stack: Stack, studies: dict[str, dict[str, Any]]) -> None:
    base = f"/api/v1/experiments/{studies['bn-smoothness']['id']}/plots"
    status, _, body = get(stack, base)
    assert status == 200
    assert {"landscape", "ics"} <= set(json.loads(body)["plots"])
    status, _, body = get(stack, f"{base}/landscape.json")
    assert status == 200
    landscape = json.loads(body)
    assert [s["label"] for s in landscape["series"]] == SMOOTHNESS_VARIANTS
    for s in landscape["series"]:
        assert s["steps"] == [4, 8, 12, 16]
        assert all(lo <= hi for lo, hi in zip(s["loss_min"], s["loss_max"], strict=True))
        assert all(b > 0 for b in s["beta"])
    status, _, body = get(stack, f"{base}/ics.json")
    assert status == 200
    ics = json.loads(body)
    deep = [s for s in ics["series"] if s["label"] == "deep-bn"]
    assert [s["layer"] for s in deep] == [f"hidden{i}.linear" for i in (2, 3, 4, 5)] + [
        "output.linear"
    ]
    assert all(-1 <= c <= 1 for s in ics["series"] for c in s["cosine"])
    for name, fmt, magic in (("landscape", "png", b"\x89PNG"), ("ics", "svg", b"<?xml")):
        status, headers, body = get(stack, f"{base}/{name}.{fmt}")
        assert status == 200 and body.startswith(magic), (name, fmt)
