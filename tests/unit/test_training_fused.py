"""Fused members: each member's numbers equal member-by-member training's, and resume exactly."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from shared.spec import ExperimentSpec
from worker.training import MemorySink, masks, train
from worker.training.adam import StackedAdam
from worker.training.config import TrainingConfig
from worker.training.fused import applies

EVERY_STEP = TrainingConfig(flush_every_s=0.0)
MLP = {"kind": "mlp", "hidden": [24, 16]}
CNN: dict[str, Any] = {
    "kind": "cnn",
    "blocks": [{"channels": 4, "kernel": 3, "padding": 1, "pool": "avg"}, {"channels": 6}],
    "head": {"hidden": [16]},
}


def _cnn(batchnorm: bool, dropout: float) -> dict[str, Any]:
    placement = "before_activation" if batchnorm else "none"
    blocks = [{**b, "batchnorm": placement, "dropout": dropout} for b in CNN["blocks"]]
    return {
        **CNN,
        "blocks": blocks,
        "head": {"hidden": [16], "batchnorm": placement, "dropout": dropout},
    }


FAMILIES = {
    "mlp": [
        {"name": "plain", "model": MLP},
        {"name": "dropout", "model": {**MLP, "dropout": 0.3}},
        {"name": "dropout-more", "model": {**MLP, "dropout": [0.5, 0.2]}},
        {"name": "bn", "model": {**MLP, "batchnorm": "before_activation"}},
        # BN before the activation: after it, a nearly dead unit's tiny variance amplifies float
        # error (a 1e-6 change of the learning rate moves the loss by 1e-3 within 60 steps), so
        # no two ways of computing the same steps agree there for long.
        {"name": "bn-dropout", "model": {**MLP, "batchnorm": "before_activation", "dropout": 0.2}},
    ],
    "mlp-no-bn": [
        {"name": "plain", "model": MLP},
        {"name": "dropout", "model": {**MLP, "dropout": 0.3}},
        {"name": "dropout-more", "model": {**MLP, "dropout": [0.5, 0.2]}},
    ],
    "cnn": [
        {"name": "plain", "model": _cnn(False, 0.0)},
        {"name": "dropout", "model": _cnn(False, 0.25)},
        {"name": "bn", "model": _cnn(True, 0.0)},
        {"name": "bn-dropout", "model": _cnn(True, 0.25)},
    ],
}


def make_spec(kind: str, fuse: bool, mode: str = "train", **training: Any) -> ExperimentSpec:
    """600 digits, batch 64: 10 steps per epoch; two seeds as one group; probes in `mode`."""
    return ExperimentSpec.model_validate(
        {
            "name": "fused",
            "dataset": {"name": "digits", "train_size": 600, "test_size": 200},
            "variants": FAMILIES[kind],
            "training": {
                "epochs": 3,
                "batch_size": 64,
                "seeds": [1, 2],
                "optimizer": {"name": "adam", "lr": 0.005},
                "fuse": fuse,
                **training,
            },
            "probes": {"every": 7, "mode": mode, "weights": True, "gradients": True},
        }
    )


def _metrics(sink: MemorySink) -> dict[tuple[str, int, str, int], float]:
    return {(p.variant, p.seed, p.key, p.step): p.value for p in sink.metrics}


def _histograms(sink: MemorySink) -> dict[tuple[str, int, str, str, int], Any]:
    return {(h.variant, h.seed, h.layer, h.kind, h.step): h for h in sink.histograms}


@pytest.mark.parametrize(
    ("kind", "epochs", "optimizer", "mode"),
    [
        # Adam only where no bias feeds a BatchNorm: that bias's gradient is zero up to float
        # error, which Adam scales up to full steps, so its value (and the running mean, and
        # the test loss) is noise in either way of training.
        ("mlp-no-bn", 30, {"name": "adam", "lr": 0.005}, "train"),
        ("mlp", 30, {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "train"),
        ("cnn", 20, {"name": "sgd", "lr": 0.02, "momentum": 0.5}, "train"),
        # Eval-mode probes: a stacked forward of their own, on BN's running statistics.
        ("mlp", 10, {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "eval"),
        ("cnn", 10, {"name": "sgd", "lr": 0.02, "momentum": 0.5}, "eval"),
    ],
)
def test_each_member_matches_member_by_member_training(
    kind: str, epochs: int, optimizer: dict[str, Any], mode: str
) -> None:
    fused, alone = MemorySink(), MemorySink()
    spec = make_spec(kind, True, mode, epochs=epochs, optimizer=optimizer)
    assert applies(spec)
    train(spec, fused, device="cpu")
    train(make_spec(kind, False, mode, epochs=epochs, optimizer=optimizer), alone, device="cpu")
    got, want = _metrics(fused), _metrics(alone)
    assert got.keys() == want.keys()
    steps = [k[3] for k in want if k[2] == "train_loss"]
    assert max(steps) == epochs * 10 and len(steps) == len(FAMILIES[kind]) * 2 * epochs * 10
    for key, value in want.items():
        # An example within float error of the decision boundary may flip: 1 of 200 test ones.
        close = 1 / 200 + 1e-6 if key[2] == "test_accuracy" else 1e-5
        assert got[key] == pytest.approx(value, rel=1e-3, abs=close), key
    got_h, want_h = _histograms(fused), _histograms(alone)
    assert got_h.keys() == want_h.keys() and want_h
    for hkey, h in want_h.items():
        other = got_h[hkey]
        if max(abs(h.stats["min"]), abs(h.stats["max"])) < 1e-6:
            continue  # a bias before BatchNorm: its gradient is float noise, zero in theory
        for stat in ("mean", "std", "min", "max", "zero_fraction"):
            assert other.stats[stat] == pytest.approx(h.stats[stat], rel=1e-3, abs=1e-5), key
        # A value within float error of a bin edge may fall on its other side.
        moved = sum(abs(a - b) for a, b in zip(other.counts, h.counts, strict=True))
        assert moved <= max(4, sum(h.counts) // 500), key


@pytest.mark.parametrize("stop_after", [9, 23])
def test_a_fused_run_resumes_exactly(stop_after: int) -> None:
    spec = make_spec("cnn", True, schedule={"name": "step", "step_size": 1, "gamma": 0.5})
    whole = MemorySink()
    expected = train(spec, whole, device="cpu", config=EVERY_STEP)

    class StopAfter(MemorySink):
        def should_stop(self) -> bool:
            self.calls = getattr(self, "calls", 0) + 1
            return self.calls > stop_after

    first = StopAfter()
    assert train(spec, first, device="cpu", config=EVERY_STEP).status == "cancelled"
    buffer = io.BytesIO()
    torch.save(first.checkpoint, buffer)  # as the database stores it
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    second = MemorySink()
    resumed = train(spec, second, device="cpu", resume=state, config=EVERY_STEP)
    combined = {**_metrics(first), **_metrics(second)}
    assert combined == _metrics(whole)  # bit for bit
    after = {k: h.stats for k, h in _histograms(second).items()}
    before = {k: h.stats for k, h in _histograms(whole).items()}
    assert after and all(before[key] == stats for key, stats in after.items())
    assert [(r.status, r.summary) for r in resumed.runs] == [
        (r.status, r.summary) for r in expected.runs
    ]


def test_fusion_applies_only_where_it_can() -> None:
    assert applies(make_spec("mlp", True))
    assert not applies(make_spec("mlp", False))
    one_each = ExperimentSpec.model_validate(
        {
            "name": "one",
            "dataset": {"name": "digits"},
            "variants": [
                {"name": "plain", "model": MLP},
                {"name": "bn", "model": {**MLP, "batchnorm": "before_activation"}},
            ],
        }
    )
    assert not applies(one_each)  # no two members share a shape: nothing to gain
    noisy = {**MLP, "batchnorm": "before_activation", "bn_noise": 0.5}
    spec = make_spec("mlp", True).model_dump()
    spec["variants"] = [{"name": "a", "model": noisy}, {"name": "b", "model": noisy}]
    assert not applies(ExperimentSpec.model_validate(spec))
    spec = make_spec("mlp", True).model_dump()
    spec["probes"]["norms"] = {"every": 5}
    assert not applies(ExperimentSpec.model_validate(spec))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_masks_drawn_per_seed_equal_masks_drawn_per_layer(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where bernoulli_ is a float64 uniform draw compared with 1 - p, one draw per seed gives
    # the masks; elsewhere (MKL's stream) the masks come one bernoulli_ per layer. Same numbers.
    spec = make_spec(kind, True, epochs=2)
    batched = MemorySink()
    train(spec, batched, device="cpu")
    monkeypatch.setattr(masks, "uniform_matches_bernoulli", lambda: False)
    per_layer = MemorySink()
    train(spec, per_layer, device="cpu")
    assert _metrics(batched) == _metrics(per_layer)
    after = {k: h.stats for k, h in _histograms(batched).items()}
    assert after == {k: h.stats for k, h in _histograms(per_layer).items()}


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_stacked_adam_steps_as_torch_does(name: str) -> None:
    # Units that never fire keep second moments of exactly 0, which StackedAdam's square root
    # takes another (faster) way; the parameters and the state must not notice.
    made = torch.Generator().manual_seed(3)
    start = torch.randn(4, 30, 20, generator=made)
    start[:, ::2] = 0.0
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    want, got = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    theirs = cls([want], lr=0.01, weight_decay=0.01, foreach=True)
    ours = StackedAdam(
        [got], lr=0.01, weight_decay=0.01, decoupled_weight_decay=name == "adamw", foreach=True
    )
    for _ in range(5):
        grad = torch.randn(start.shape, generator=made) * (start != 0)
        want.grad, got.grad = grad.clone(), grad.clone()
        theirs.step()
        ours.step()
    assert torch.equal(want, got)
    assert theirs.state_dict()["state"].keys() == ours.state_dict()["state"].keys()
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert torch.equal(theirs.state[want][key], ours.state[got][key]), key
