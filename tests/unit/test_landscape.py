"""The optimisation probes: their arithmetic against a direct computation, and no trace left."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from shared.spec import ExperimentSpec, MLPModel, ProbeSpec
from tests.unit.test_training_loop import EVERY_STEP, StopAfter
from worker.training import MemorySink, train
from worker.training import landscape as measures
from worker.training.lockstep import Member, make_optimizer
from worker.training.models import Net, build_model
from worker.training.optics import OptimisationProbes
from worker.training.recorder import Recorder, RunBook

LR = 0.1


def _net(**kwargs: Any) -> Net:
    return build_model(MLPModel(hidden=[6, 5], **kwargs), (4,), 3, seed=0)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(16, 4, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def _direct_grads(net: Net, x: torch.Tensor, y: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """Loss and gradients the ordinary way: forward, backward, read .grad (on a copy)."""
    net.zero_grad()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters()]  # type: ignore[union-attr]


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors]).double()


def test_landscape_agrees_with_moving_a_copy_of_the_net() -> None:
    net, (x, y) = _net(batchnorm="before_activation"), _batch()
    multipliers = [0.5, 1.0, 4.0]
    with measures.frozen_randomness(x.device) as reset:
        found = measures.landscape(net, x, y, F.cross_entropy, LR, multipliers, reset)
    _, g = _direct_grads(copy.deepcopy(net), x, y)
    losses, changes, betas = [], [], []
    for m in multipliers:
        moved = copy.deepcopy(net)
        with torch.no_grad():
            for p, grad in zip(moved.parameters(), g, strict=True):
                p -= m * LR * grad
        loss, g_moved = _direct_grads(moved, x, y)
        change = (_flat(g_moved) - _flat(g)).norm().item()
        losses.append(loss)
        changes.append(change)
        betas.append(change / (m * LR * _flat(g).norm().item()))
    summary = {k: v.item() for k, v in found.summary().items()}
    assert found.losses.tolist() == pytest.approx(losses, rel=1e-5)
    assert summary["landscape_loss_min"] == pytest.approx(min(losses), rel=1e-5)
    assert summary["landscape_loss_max"] == pytest.approx(max(losses), rel=1e-5)
    assert summary["landscape_grad_change_min"] == pytest.approx(min(changes), rel=1e-4)
    assert summary["landscape_grad_change_max"] == pytest.approx(max(changes), rel=1e-4)
    assert summary["landscape_beta"] == pytest.approx(max(betas), rel=1e-4)
    assert max(changes) > 0


def test_ics_agrees_with_updating_the_layers_below_by_hand() -> None:
    net, (x, y) = _net(batchnorm="before_activation"), _batch()
    with measures.frozen_randomness(x.device) as reset:
        found = measures.ics(net, x, y, F.cross_entropy, LR, reset)
    assert list(found) == ["hidden2.linear", "output.linear"]
    reference = copy.deepcopy(net)
    _, g = _direct_grads(reference, x, y)
    names = [name for name, _ in reference.named_parameters()]
    for layer, module_key in (
        ("hidden2.linear", "hidden2_linear"),
        ("output.linear", "output_linear"),
    ):
        below = copy.deepcopy(net)
        order = [key for key, _ in below.named_children()]
        with torch.no_grad():
            for name, p, grad in zip(names, below.parameters(), g, strict=True):
                if order.index(name.split(".")[0]) < order.index(module_key):
                    p -= LR * grad
        _, after = _direct_grads(below, x, y)
        index = names.index(f"{module_key}.weight")
        before_w, after_w = g[index].reshape(-1), after[index].reshape(-1)
        l2, cos = found[layer]
        assert l2.item() == pytest.approx((after_w - before_w).norm().item(), rel=1e-4, abs=1e-9)
        expected_cos = (after_w @ before_w / (after_w.norm() * before_w.norm())).item()
        assert cos.item() == pytest.approx(expected_cos, rel=1e-5)
        assert l2.item() > 0  # the layers below moved, so the gradient did


def test_norms_and_unit_input_percentiles_agree_with_direct_ones() -> None:
    net, (x, y) = _net(activation="sigmoid", batchnorm="before_activation"), _batch()
    F.cross_entropy(net(x), y).backward()
    found = measures.norms(net)
    assert found["weight_norm:hidden1.linear.weight"].item() == pytest.approx(
        net.hidden1_linear.weight.norm().item()
    )
    assert found["grad_norm:hidden2.bn.weight"].item() == pytest.approx(
        net.hidden2_bn.weight.grad.norm().item()  # type: ignore[union-attr]
    )
    assert "grad_norm:output.linear.bias" not in found
    percentiles = measures.unit_input(net, x, unit=2, mode="eval")
    net.eval()
    with torch.no_grad():
        hidden1 = net.hidden1_act(net.hidden1_bn(net.hidden1_linear(x)))
        pre = net.hidden2_bn(net.hidden2_linear(hidden1))
    # The input of the last sigmoid is hidden2's BatchNorm output (in eval mode).
    for p in (15, 50, 85):
        exact = torch.quantile(pre[:, 2].double(), p / 100).item()
        assert percentiles[f"unit_input_p{p}"].item() == pytest.approx(exact, rel=1e-6)
    # Train mode: BatchNorm on the examples' own statistics, running statistics left alone.
    net.train()
    running = net.hidden2_bn.running_mean.clone()
    seen = measures.unit_input(net, x, unit=2)
    assert torch.equal(net.hidden2_bn.running_mean, running)
    trained = copy.deepcopy(net)
    with torch.no_grad():
        pre = trained.hidden2_bn(
            trained.hidden2_linear(
                trained.hidden1_act(trained.hidden1_bn(trained.hidden1_linear(x)))
            )
        )
    exact = torch.quantile(pre[:, 2].double(), 0.5).item()
    assert seen["unit_input_p50"].item() == pytest.approx(exact, rel=1e-6)


def test_probing_leaves_weights_buffers_gradients_and_rng_exactly_as_they_were() -> None:
    net = _net(batchnorm="before_activation", dropout=0.3)
    noisy = _net(batchnorm="before_activation", bn_noise=2.0)
    x, y = _batch()
    spec = ProbeSpec(landscape={"every": 1}, ics={"every": 1}, norms={"every": 1})
    probes = OptimisationProbes.of(spec, F.cross_entropy, {False: x})
    assert probes is not None and OptimisationProbes.of(ProbeSpec(), F.cross_entropy, {}) is None
    members = []
    for name, n in (("drop", net), ("noisy", noisy)):
        opt = make_optimizer(
            n.parameters(), ExperimentSpec.model_fields["training"].default.optimizer
        )
        F.cross_entropy(n(x), y).backward()
        members.append(Member(name, n, opt, None, False))
    before = [copy.deepcopy(m.net.state_dict()) for m in members]
    grads = [[p.grad.clone() for p in m.net.parameters()] for m in members]  # type: ignore[union-attr]
    rng = torch.get_rng_state()
    recorder = Recorder({m.name: RunBook(m.name, 0) for m in members}, None)  # type: ignore[arg-type]
    probes.measure(1, members, {False: x}, y, recorder)
    assert torch.equal(torch.get_rng_state(), rng)
    for m, state, grad in zip(members, before, grads, strict=True):
        assert all(torch.equal(state[k], v) for k, v in m.net.state_dict().items())
        assert all(torch.equal(g, p.grad) for g, p in zip(grad, m.net.parameters(), strict=True))
    keys = {key for _, key, _, _, _ in recorder.evals}
    assert {"landscape_beta", "ics_l2:output.linear", "grad_norm:hidden1.linear.weight"} <= keys
    assert all(math.isfinite(v.item()) for *_, v, _ in recorder.evals)


def _spec(probes: dict[str, Any]) -> ExperimentSpec:
    mlp = {"kind": "mlp", "hidden": [16, 8]}
    return ExperimentSpec.model_validate(
        {
            "name": "t",
            "dataset": {"name": "digits", "train_size": 600, "test_size": 200},
            "variants": [
                {"name": "plain", "model": mlp},
                {
                    "name": "bn-drop",
                    "model": {**mlp, "batchnorm": "before_activation", "dropout": 0.3},
                },
                {
                    "name": "noisy",
                    "model": {**mlp, "batchnorm": "before_activation", "bn_noise": 1.0},
                },
            ],
            "training": {
                "epochs": 2,
                "batch_size": 128,
                "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            },
            "probes": probes,
        }
    )


def test_training_is_bitwise_the_same_with_and_without_the_probes() -> None:
    quiet, probed = MemorySink(), MemorySink()
    train(_spec({"enabled": False}), quiet, device="cpu")
    every = {"every": 1}
    train(
        _spec(
            {
                "enabled": False,
                "landscape": {**every, "multipliers": [0.5, 8.0]},
                "ics": every,
                "norms": every,
                "unit_input": every,
            }
        ),
        probed,
        device="cpu",
    )
    table = {(p.variant, p.key, p.step): p.value for p in probed.metrics}
    plain = {(p.variant, p.key, p.step): p.value for p in quiet.metrics}
    assert {k: table[k] for k in plain} == plain  # every loss and evaluation, bit for bit
    assert len(table) > len(plain)
    steps = sorted({s for v, k, s in table if v == "noisy" and k == "landscape_beta"})
    assert steps == list(range(1, 11))
    for variant in ("plain", "bn-drop", "noisy"):
        band = probed.series(variant, "landscape_loss_max")
        low = probed.series(variant, "landscape_loss_min")
        assert all(lo <= hi for (_, lo), (_, hi) in zip(low, band, strict=True))
        p15, p85 = (
            probed.series(variant, "unit_input_p15"),
            probed.series(variant, "unit_input_p85"),
        )
        assert all(a <= b for (_, a), (_, b) in zip(p15, p85, strict=True))


def test_noisy_batchnorm_shifts_every_training_step_and_not_in_eval() -> None:
    net = _net(batchnorm="before_activation", bn_noise=1.0)
    x = torch.randn(64, 4)
    torch.manual_seed(0)
    first, second = net.hidden1_bn(net.hidden1_linear(x)), net.hidden1_bn(net.hidden1_linear(x))
    # A fresh shift and scale per unit every forward: the batch means move off BN's zero.
    assert not torch.allclose(first.mean(0), second.mean(0))
    assert first.mean(0).abs().max() > 0.05
    net.eval()
    plain = _net(batchnorm="before_activation").eval()
    plain.load_state_dict(net.state_dict())
    assert torch.equal(net(x), plain(x))
    with pytest.raises(ValueError, match="bn_noise needs batchnorm"):
        MLPModel(hidden=[4], bn_noise=1.0)


def test_a_resumed_run_gives_the_same_probe_numbers() -> None:
    every = {"every": 2}
    spec = _spec(
        {"every": 4, "landscape": every, "ics": every, "norms": every, "unit_input": every}
    )
    whole = MemorySink()
    train(spec, whole, device="cpu", config=EVERY_STEP)
    first = StopAfter(7)
    train(spec, first, device="cpu", config=EVERY_STEP)
    assert first.checkpoint is not None
    second = MemorySink()
    train(spec, second, device="cpu", resume=first.checkpoint, config=EVERY_STEP)
    table = {(p.variant, p.key, p.step): p.value for p in [*first.metrics, *second.metrics]}
    assert table == {(p.variant, p.key, p.step): p.value for p in whole.metrics}
    assert any(key == "landscape_beta" and step > 7 for _, key, step in table)
