"""The lockstep loop: step numbering, evaluation, divergence, cancellation, exact resume."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from shared.spec import ExperimentSpec
from worker.training import MemorySink, train
from worker.training.__main__ import main
from worker.training.config import TrainingConfig
from worker.training.fused import applies

# Flush (and checkpoint) after every step, so a stop can happen anywhere.
EVERY_STEP = TrainingConfig(flush_every_s=0.0)
MLP = {"kind": "mlp", "hidden": [16]}


def make_spec(**overrides: Any) -> ExperimentSpec:
    """600 digits, batch 128: 5 steps per epoch, the last one partial (88 examples)."""
    spec: dict[str, Any] = {
        "name": "t",
        "dataset": {"name": "digits", "train_size": 600, "test_size": 200},
        "variants": [
            {"name": "plain", "model": MLP},
            {"name": "bn", "model": {**MLP, "batchnorm": "before_activation"}},
        ],
        "training": {"epochs": 2, "batch_size": 128, "optimizer": {"name": "sgd", "lr": 0.1}},
        "probes": {"every": 3},
    }
    for key, value in overrides.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) else value
    return ExperimentSpec.model_validate(spec)


class StopAfter(MemorySink):
    """Asks to stop before step `steps + 1` (counting across seeds)."""

    def __init__(self, steps: int):
        super().__init__()
        self.calls, self.steps = 0, steps

    def should_stop(self) -> bool:
        self.calls += 1
        return self.calls > self.steps


def metric_table(sink: MemorySink) -> dict[tuple[str, int, str, int], float]:
    """Every metric by (variant, seed, key, step); a re-sent step overwrites, as the DB upserts."""
    return {(p.variant, p.seed, p.key, p.step): p.value for p in sink.metrics}


def test_one_train_loss_per_step_and_evaluation_at_epoch_ends() -> None:
    sink = MemorySink()
    spec = make_spec(training={"epochs": 3, "eval_every": 2})
    result = train(spec, sink, device="cpu", config=EVERY_STEP)
    assert result.status == "succeeded" and result.device == "cpu"
    for variant in ("plain", "bn"):
        steps = [p.step for p in sink.metrics if p.variant == variant and p.key == "train_loss"]
        assert steps == list(range(1, 16))
        assert [s for s, _ in sink.series(variant, "test_loss")] == [10, 15]
        accuracy = [v for _, v in sink.series(variant, "test_accuracy")]
        assert len(accuracy) == 2 and all(0.0 <= a <= 1.0 for a in accuracy)
    assert sink.progress[-1] == (15, 15)
    for run in result.runs:
        losses = [v for _, v in sink.series(run.variant, "train_loss")]
        assert run.status == "succeeded" and run.summary["steps"] == 15
        assert run.summary["final_train_loss"] == pytest.approx(sum(losses[-10:]) / 10)
        assert run.summary["test_loss"] == sink.series(run.variant, "test_loss")[-1][1]
    # The BN net learns visibly faster, as in the article.
    bn, plain = (
        r.summary["final_train_loss"] for r in sorted(result.runs, key=lambda r: r.variant)
    )
    assert bn < plain


def test_variants_see_the_same_batches_in_lockstep() -> None:
    twins = [
        {"name": "a", "model": MLP},
        {"name": "b", "model": MLP},
        {"name": "c", "model": {**MLP, "batchnorm": "before_activation"}},
    ]
    sink = MemorySink()
    train(
        make_spec(variants=twins, training={"init": "shared", "seeds": [0, 1]}), sink, device="cpu"
    )
    for seed in (0, 1):
        a, b = (sink.series(name, "train_loss", seed) for name in ("a", "b"))
        assert len(a) == 10 and a == b  # same start, same batches: the same numbers exactly
    assert sink.series("a", "train_loss", 0) != sink.series("a", "train_loss", 1)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("fuse", [False, True])
def test_probes_do_not_change_training(mode: str, fuse: bool) -> None:
    bn_dropout = {**MLP, "batchnorm": "before_activation"}
    variants = [
        {"name": "drop", "model": {**bn_dropout, "dropout": 0.3}},
        {"name": "drop-less", "model": {**bn_dropout, "dropout": 0.1}},
    ]
    training = {"seeds": [0, 1], "fuse": fuse}
    quiet, probed = MemorySink(), MemorySink()
    spec = make_spec(variants=variants, training=training, probes={"enabled": False})
    assert applies(spec) == fuse
    train(spec, quiet, device="cpu")
    probes = {"every": 1, "mode": mode, "weights": True, "gradients": True}
    train(make_spec(variants=variants, training=training, probes=probes), probed, device="cpu")
    assert not quiet.histograms and probed.histograms
    assert metric_table(quiet) == metric_table(probed)  # bit for bit
    kinds = {h.kind for h in probed.histograms}
    assert kinds == {"activation", "weight", "grad"}
    assert {h.step for h in probed.histograms} == set(range(1, 11))


def _run_with_stop(spec: ExperimentSpec, steps: int) -> tuple[MemorySink, dict[str, Any]]:
    sink = StopAfter(steps)
    result = train(spec, sink, device="cpu", config=EVERY_STEP)
    assert result.status == "cancelled"
    assert sink.checkpoint is not None
    buffer = io.BytesIO()
    torch.save(sink.checkpoint, buffer)  # as the database stores it
    buffer.seek(0)
    return sink, torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("stop_after", [5, 7, 12])
def test_resume_reproduces_an_uninterrupted_run_exactly(stop_after: int) -> None:
    variants = [
        {"name": "plain", "model": MLP},
        {"name": "dropout", "model": {**MLP, "dropout": 0.4}},
        {"name": "bn", "model": {**MLP, "batchnorm": "before_activation", "dropout": 0.2}},
    ]
    spec = make_spec(
        variants=variants,
        training={
            "seeds": [3, 4],
            "fuse": False,  # seed after seed (test_training_fused.py resumes a fused group)
            "optimizer": {"name": "adam", "lr": 0.01},
            "schedule": {"name": "step", "step_size": 1, "gamma": 0.5},
        },
        probes={"every": 3, "mode": "train"},
    )
    whole = MemorySink()
    expected = train(spec, whole, device="cpu", config=EVERY_STEP)
    first, state = _run_with_stop(spec, stop_after)
    second = MemorySink()
    resumed = train(spec, second, device="cpu", resume=state, config=EVERY_STEP)
    combined = {**metric_table(first), **metric_table(second)}
    assert combined == metric_table(whole)  # bit for bit, train_loss and evaluations
    assert len([k for k in combined if k[2] == "train_loss"]) == 3 * 2 * 10
    after = {(h.variant, h.seed, h.layer, h.step): h.stats for h in second.histograms}
    before = {(h.variant, h.seed, h.layer, h.step): h.stats for h in whole.histograms}
    assert after and all(before[key] == stats for key, stats in after.items())
    assert [(r.status, r.summary) for r in resumed.runs] == [
        (r.status, r.summary) for r in expected.runs
    ]


def test_resume_refuses_a_checkpoint_of_another_spec() -> None:
    _, state = _run_with_stop(make_spec(), 2)
    with pytest.raises(ValueError, match="does not belong"):
        train(make_spec(training={"epochs": 3}), MemorySink(), device="cpu", resume=state)


def test_cancellation_stops_between_steps_and_reports_what_was_done() -> None:
    sink, state = _run_with_stop(make_spec(), 4)
    for variant in ("plain", "bn"):
        assert [s for s, _ in sink.series(variant, "train_loss")] == [1, 2, 3, 4]
    assert state["seed_index"] == 0 and state["position"]["step_in_epoch"] == 4
    result = train(make_spec(), StopAfter(0), device="cpu")
    assert result.status == "cancelled"
    assert [(r.status, r.summary["steps"]) for r in result.runs] == [("cancelled", 0)] * 2


def test_a_diverging_run_stops_and_sends_nothing_non_finite() -> None:
    spec = make_spec(
        dataset={"name": "wide-scale", "n": 256, "train_size": None, "test_size": None},
        variants=[
            {"name": "raw", "model": MLP},
            {
                "name": "scaled",
                "model": {**MLP, "batchnorm": "before_activation"},
                "normalize_inputs": True,
            },
        ],
        training={"epochs": 10, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 1.0}},
        probes={"every": 2},
    )
    sink = MemorySink()
    result = train(spec, sink, device="cpu", config=EVERY_STEP)
    runs = {r.variant: r for r in result.runs}
    raw = runs["raw"]
    assert raw.status == "diverged" and raw.diverged_step is not None
    assert raw.summary["steps"] == raw.diverged_step - 1
    assert runs["scaled"].status == "succeeded" and runs["scaled"].summary["steps"] == 80
    assert all(math.isfinite(p.value) for p in sink.metrics)
    assert max(p.step for p in sink.metrics if p.variant == "raw") < raw.diverged_step
    assert all(h.step < raw.diverged_step for h in sink.histograms if h.variant == "raw")
    assert all(math.isfinite(h.stats["mean"]) for h in sink.histograms)


def test_regression_reports_fit_curves_data_points_and_train_test_gap() -> None:
    spec = make_spec(
        dataset={"name": "regression1d", "n": 30, "train_size": None, "test_size": None},
        variants=[
            {"name": "plain", "model": {"kind": "mlp", "hidden": [32, 32]}},
            {"name": "dropout", "model": {"kind": "mlp", "hidden": [32, 32], "dropout": 0.2}},
        ],
        training={
            "epochs": 20,
            "batch_size": None,
            "eval_every": 10,
            "optimizer": {"name": "adam", "lr": 0.01},
        },
        probes={"every": 10},
    )
    sink = MemorySink()
    train(spec, sink, device="cpu")
    for variant in ("plain", "dropout"):
        curves = {(c.key, c.step): c for c in sink.curves if c.variant == variant}
        assert sorted(curves) == [("fit", 10), ("fit", 20), ("test_points", 0), ("train_points", 0)]
        assert len(curves[("train_points", 0)].x) == 30
        fit = curves[("fit", 20)]
        assert len(fit.x) == len(fit.y) == 200 and fit.epoch == 20
        assert fit.x[0] == pytest.approx(-1.1) and fit.x[-1] == pytest.approx(1.1)
        assert [s for s, _ in sink.series(variant, "train_loss_eval")] == [10, 20]
        assert [s for s, _ in sink.series(variant, "test_loss")] == [10, 20]
        assert len(sink.series(variant, "train_loss")) == 20


def test_command_line_runs_a_spec_file_and_writes_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(make_spec(training={"epochs": 1}).model_dump_json())
    assert main([str(path), "--device", "cpu", "--out", str(tmp_path / "out.json")]) == 0
    results = json.loads((tmp_path / "out.json").read_text())
    assert [r["status"] for r in results["runs"]] == ["succeeded", "succeeded"]
    assert len([m for m in results["metrics"] if m["key"] == "train_loss"]) == 10
    assert results["histograms"][0]["stats"]["quantiles"].keys() >= {"0", "50", "100"}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("plain seed 0: succeeded, 5 steps, final_train_loss=")
