"""Expanding a sweep's axes into points: grids, random draws, paths into variants."""

from __future__ import annotations

import math

import pytest

from shared.presets import PRESETS
from shared.spec import ExperimentSpec
from shared.sweep import SweepError, expand, point_name, set_path
from shared.sweep_presets import SWEEP_PRESETS


def base() -> dict:
    return PRESETS["seed-bn-mlp"].spec_copy()


def test_grid_is_every_combination_last_axis_fastest() -> None:
    axes = {"training.optimizer.lr": [0.01, 0.1, 1.0], "training.batch_size": [64, 512]}
    points = expand(base(), axes)
    assert [p.index for p in points] == list(range(6))
    assert [p.values for p in points][:3] == [
        {"training.optimizer.lr": 0.01, "training.batch_size": 64},
        {"training.optimizer.lr": 0.01, "training.batch_size": 512},
        {"training.optimizer.lr": 0.1, "training.batch_size": 64},
    ]
    last = points[-1].spec["training"]
    assert last["optimizer"]["lr"] == 1.0 and last["batch_size"] == 512
    assert base()["training"]["optimizer"]["lr"] == 0.01  # the base is left alone


def test_variant_paths_by_name_and_star() -> None:
    one = expand(base(), {"variants.bn.model.dropout": [0.3]})[0].spec
    assert [v["model"].get("dropout", 0.0) for v in one["variants"]] == [0.0, 0.3]
    every = expand(base(), {"variants.*.model.hidden": [[64, 32]]})[0].spec
    assert [v["model"]["hidden"] for v in every["variants"]] == [[64, 32], [64, 32]]
    ExperimentSpec.model_validate(every)


def test_unknown_variant_names_the_path_and_the_variants() -> None:
    with pytest.raises(SweepError) as caught:
        expand(base(), {"variants.bnx.model.dropout": [0.1]})
    assert caught.value.axis == "variants.bnx.model.dropout"
    assert "plain, bn" in str(caught.value)


def test_path_through_a_value_or_past_a_list_is_refused() -> None:
    with pytest.raises(SweepError, match="is a value"):
        set_path(base(), "training.epochs.x", 1)
    with pytest.raises(SweepError, match="no index"):
        set_path(base(), "variants.bn.model.hidden.5", 1)
    with pytest.raises(SweepError, match="dotted path"):
        set_path(base(), "training..lr", 1)


def test_a_missing_group_is_started_and_left_to_validation() -> None:
    spec = base()
    set_path(spec, "training.schedule.name", "cosine")
    assert ExperimentSpec.model_validate(spec).training.schedule.name == "cosine"


def test_random_draws_are_reproducible_and_in_range() -> None:
    axes = {
        "training.optimizer.lr": {"log_uniform": [1e-4, 1]},
        "training.optimizer.momentum": {"uniform": [0.0, 0.9]},
        "training.batch_size": {"choice": [64, 128]},
    }
    first = expand(base(), axes, "random", samples=20, seed=7)
    again = expand(base(), axes, "random", samples=20, seed=7)
    other = expand(base(), axes, "random", samples=20, seed=8)
    assert [p.values for p in first] == [p.values for p in again] != [p.values for p in other]
    lrs = [p.values["training.optimizer.lr"] for p in first]
    assert all(1e-4 <= lr <= 1 for lr in lrs)
    # Log-uniform: spread over the decades, not bunched near the top.
    assert min(math.log10(lr) for lr in lrs) < -2
    assert {p.values["training.batch_size"] for p in first} <= {64, 128}


@pytest.mark.parametrize(
    ("axes", "method", "message"),
    [
        ({}, "grid", "at least one axis"),
        ({"training.optimizer.lr": []}, "grid", "lists its values"),
        ({"training.optimizer.lr": {"log_uniform": [1e-4, 1]}}, "grid", "lists its values"),
        ({"training.optimizer.lr": {"log_uniform": [0, 1]}}, "random", "0 < low"),
        ({"training.optimizer.lr": {"uniform": [2, 1]}}, "random", "low <= high"),
        ({"training.optimizer.lr": {"normal": [0, 1]}}, "random", "log_uniform"),
    ],
)
def test_bad_axes_are_refused(axes: dict, method: str, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        expand(base(), axes, method, samples=3)


def test_point_names_stay_within_the_limit() -> None:
    assert point_name("x" * 64, 123) == "x" * 59 + "-p123"
    assert len(point_name("x" * 64, 123)) == 64


def test_the_seed_bn_lr_preset_spans_0003_to_3_with_three_seeds() -> None:
    body = SWEEP_PRESETS["seed-bn-lr"].body
    lrs = body["axes"]["training.optimizer.lr"]
    assert len(lrs) >= 6 and min(lrs) == 0.003 and max(lrs) == 3.0
    assert body["base"]["overrides"]["training"]["seeds"] == [0, 1, 2]
