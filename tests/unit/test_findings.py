"""Findings state what was measured: per-variant spread across seeds, and each pair seed by seed."""

from __future__ import annotations

import pytest

from shared.findings import RunSeries, compare, compute_findings, steps_to_reach


def run(variant: str, seed: int, losses: list[float], **extra: list[float]) -> RunSeries:
    steps = list(range(1, len(losses) + 1))
    series = {"train_loss": (steps, losses)}
    for key, values in extra.items():
        series[key] = ([len(losses)] * len(values), values)
    return RunSeries(variant, seed, series, {"hidden1.linear": [0.5, 0.25]})


def test_pairs_count_the_seeds_where_each_variant_is_lower() -> None:
    runs = [
        run("plain", 0, [2.0] * 60, test_loss=[1.0]),
        run("bn", 0, [1.0] * 60, test_loss=[1.2]),
        run("plain", 1, [2.0] * 60, test_loss=[1.0]),
        run("bn", 1, [3.0] * 60, test_loss=[0.8]),
    ]
    findings = compute_findings(runs)
    (pair,) = findings["pairs"]
    assert (pair["a"], pair["b"]) == ("plain", "bn")
    early = pair["measures"]["early_train_loss"]
    assert (early["b_lower_in"], early["b_higher_in"], early["seeds"]) == (1, 1, 2)
    assert early["difference"]["mean"] == pytest.approx(0.0)
    bn = findings["variants"]["bn"]["early_train_loss"]
    assert bn["mean"] == pytest.approx(2.0) and bn["min"] == 1.0 and bn["max"] == 3.0
    assert findings["variants"]["plain"]["drift:hidden1.linear"]["mean"] == pytest.approx(0.375)
    statement = (
        "final_test_loss: bn 1 ± 0.28 vs plain 1 ± 0 (bn lower in 1, higher in 1 of 2 seeds)"
    )
    assert statement in pair["statements"]


def test_gap_uses_the_eval_mode_training_loss_when_there_is_one() -> None:
    findings = compute_findings(
        [run("plain", 0, [0.5] * 20, test_loss=[0.3], train_loss_eval=[0.1])]
    )
    assert findings["variants"]["plain"]["train_test_gap"]["mean"] == pytest.approx(0.2)


def test_steps_to_threshold_uses_a_moving_average() -> None:
    losses = [3.0] * 10 + [0.0] * 20
    # One low value is not enough: the 10-step mean must reach the threshold.
    assert steps_to_reach(list(range(1, 31)), losses, 1.5) == 15


def test_a_run_without_numbers_yields_empty_spreads() -> None:
    findings = compute_findings([RunSeries("plain", 0, {})])
    assert findings["loss_threshold"] is None
    assert findings["pairs"] == []


def test_a_measure_one_seed_lacks_is_compared_over_the_seeds_that_have_it() -> None:
    # A run cut short by a cancel may never reach its first histogram capture.
    full: dict[str, float | None] = {"final_train_loss": 0.5, "drift:hidden1.act": 0.1}
    short: dict[str, float | None] = {"final_train_loss": 0.9}
    pair = compare("plain", "bn", {0: full, 1: short}, {0: full, 1: full}, sorted(full))
    assert pair["measures"]["drift:hidden1.act"]["seeds"] == 1
    assert any(s.startswith("drift:hidden1.act") for s in pair["statements"])
