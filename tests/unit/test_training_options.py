"""The training options a spec offers do what they say: optimizers, schedules, input scaling."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from shared.presets import PRESETS
from shared.spec import ExperimentSpec
from worker.training import MemorySink, train
from worker.training.config import TrainingConfig
from worker.training.lockstep import build_members


def digits_spec(**training: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "options",
            "dataset": {"name": "digits"},
            "variants": [{"name": "plain", "model": {"kind": "mlp", "hidden": [32]}}],
            "training": {"epochs": 4, "batch_size": 64, **training},
        }
    )


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        (
            {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
            torch.optim.SGD,
        ),
        ({"name": "adam", "lr": 0.003}, torch.optim.Adam),
        ({"name": "adamw", "lr": 0.003, "weight_decay": 0.01}, torch.optim.AdamW),
    ],
)
def test_every_optimizer_is_built_as_asked_and_learns(
    optimizer: dict[str, Any], expected: type
) -> None:
    spec = digits_spec(optimizer=optimizer)
    (member,) = build_members(spec, 0, torch.device("cpu"))
    assert type(member.optimizer) is expected
    group = member.optimizer.param_groups[0]
    for key in ("lr", "momentum", "nesterov", "weight_decay"):
        if key in optimizer:
            assert group[key] == optimizer[key], key
    sink = MemorySink()
    train(spec, sink, device="cpu", config=TrainingConfig())
    losses = [value for _, value in sink.series("plain", "train_loss")]
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"name": "none"}, [0.1, 0.1, 0.1, 0.1]),
        ({"name": "step", "step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
        ({"name": "cosine"}, [0.1, 0.085355, 0.05, 0.014645]),
    ],
)
def test_schedules_set_each_epochs_learning_rate(
    schedule: dict[str, Any], expected: list[float]
) -> None:
    spec = digits_spec(optimizer={"name": "sgd", "lr": 0.1}, schedule=schedule)
    (member,) = build_members(spec, 0, torch.device("cpu"))
    seen = []
    for _ in range(spec.training.epochs):
        seen.append(member.optimizer.param_groups[0]["lr"])
        member.optimizer.step()  # the order torch expects: optimizer, then scheduler
        if member.scheduler is not None:
            member.scheduler.step()
    assert seen == pytest.approx(expected, abs=1e-6)


def test_normalised_inputs_beat_raw_wide_scale_inputs_in_every_seed() -> None:
    # The seed-input-scale preset: features around -200..200 and -10..10, standardised or not.
    raw = PRESETS["seed-input-scale"].spec_copy()
    raw["training"]["seeds"] = [0, 1, 2]
    spec = ExperimentSpec.model_validate(raw)
    result = train(spec, MemorySink(), device="cpu", config=TrainingConfig())
    accuracy = {(r.variant, r.seed): r.summary["test_accuracy"] for r in result.runs}
    for seed in (0, 1, 2):
        assert accuracy[("normalized", seed)] > accuracy[("raw", seed)], seed
