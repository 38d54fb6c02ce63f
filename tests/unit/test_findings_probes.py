"""Findings of the optimisation probes and of the BN paper's accuracy race."""

from __future__ import annotations

import math

import pytest

from shared.findings import RunSeries, compute_findings


def _run(variant: str, seed: int, scale: float, accuracies: list[float]) -> RunSeries:
    steps = [10, 20]
    series = {
        "train_loss": ([1, 2], [1.0, 0.9]),
        "test_accuracy": ([100, 200, 300], accuracies),
        "landscape_loss_min": (steps, [1.0, 0.5]),
        "landscape_loss_max": (steps, [1.0 + scale, 0.5 + 3 * scale]),
        "landscape_grad_change_max": (steps, [scale, 3 * scale]),
        "landscape_beta": (steps, [2 * scale, 4 * scale]),
        "ics_l2:hidden2.linear": (steps, [scale, scale]),
        "ics_l2:output.linear": (steps, [3 * scale, 3 * scale]),
        "ics_cos:hidden2.linear": (steps, [0.5, 1.0]),
        "grad_norm:hidden1.linear.weight": (steps, [3.0, 0.0]),
        "grad_norm:output.linear.weight": (steps, [4.0, 1.0]),
        "unit_input_p15": (steps, [-1.0, -1.0 - scale]),
        "unit_input_p85": (steps, [1.0, 1.0 + 2 * scale]),
    }
    return RunSeries(variant, seed, series)


def test_probe_measures_and_which_variant_is_lower_seed_by_seed() -> None:
    runs = [_run("plain", s, 1.0 + s, [0.3, 0.82, 0.91]) for s in range(3)]
    runs += [_run("bn", s, 0.1, [0.86, 0.93, 0.95]) for s in range(3)]
    findings = compute_findings(runs)
    plain = findings["variants"]["plain"]
    assert plain["landscape_loss_range"]["mean"] == pytest.approx(2 * 2.0)  # seeds 1, 2, 3 x 2
    assert plain["landscape_grad_change"]["mean"] == pytest.approx(2 * 2.0)
    assert plain["landscape_beta"]["mean"] == pytest.approx(3 * 2.0)
    assert plain["ics_l2"]["mean"] == pytest.approx(2 * 2.0)
    assert plain["ics_cosine"]["mean"] == pytest.approx(0.75)
    assert plain["grad_norm"]["mean"] == pytest.approx((5.0 + 1.0) / 2)
    assert plain["unit_input_p85_moved"]["mean"] == pytest.approx(2 * 2.0)
    assert plain["landscape_beta"]["std"] == pytest.approx(3 * 1.0)
    # Every run reached 0.85 and 0.9 (plain at its third evaluation), so those are the levels.
    assert findings["accuracy_levels"] == [0.8, 0.85, 0.9]
    assert plain["steps_to_test_accuracy:0.9"]["mean"] == 300
    assert findings["variants"]["bn"]["steps_to_test_accuracy:0.9"]["mean"] == 200
    pair = next(p for p in findings["pairs"] if (p["a"], p["b"]) == ("plain", "bn"))
    for measure in ("landscape_beta", "ics_l2", "unit_input_p15_moved"):
        assert pair["measures"][measure]["b_lower_in"] == 3
    sooner = pair["measures"]["steps_to_test_accuracy:0.9"]
    assert sooner["difference"]["mean"] == -100 and sooner["b_lower_in"] == 3
    assert (
        "steps_to_test_accuracy:0.9: bn 200 ± 0 vs plain 300 ± 0 "
        "(bn lower in 3, higher in 0 of 3 seeds)" in pair["statements"]
    )


def test_no_probes_no_probe_measures() -> None:
    findings = compute_findings([RunSeries("plain", 0, {"train_loss": ([1], [1.0])})])
    measures = findings["variants"]["plain"]
    assert not [
        m for m in measures if m.startswith(("landscape", "ics", "unit_input", "steps_to_test"))
    ]
    assert findings["accuracy_levels"] == [] and math.isfinite(measures["final_train_loss"]["mean"])
