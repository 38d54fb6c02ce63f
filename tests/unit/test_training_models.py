"""Networks: plain Sequential forward, seeded initialisation, `init: shared` weight alignment."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.spec import MLPModel
from tests.unit.layers import linear
from worker.training.models import ACTIVATIONS, build_group, build_model

PLAIN = MLPModel(hidden=[48, 24])
BN = MLPModel(hidden=[48, 24], batchnorm="before_activation")
WIDE = MLPModel(hidden=[64, 24])


def test_shared_init_gives_same_shaped_layers_identical_weights() -> None:
    plain, bn, wide = build_group([PLAIN, BN, WIDE], (1, 28, 28), 10, run_seed=7, init="shared")
    assert torch.equal(linear(plain, "hidden1_linear").weight, linear(bn, "hidden1_linear").weight)
    assert torch.equal(linear(plain, "hidden2_linear").bias, linear(bn, "hidden2_linear").bias)
    assert torch.equal(linear(plain, "output_linear").weight, linear(bn, "output_linear").weight)
    # 784x64 has no twin: it keeps its own draw; its 64x24 second layer differs from 48x24.
    assert linear(wide, "hidden1_linear").weight.shape == (64, 784)
    assert torch.equal(linear(wide, "output_linear").weight, linear(plain, "output_linear").weight)


def test_independent_init_differs_per_variant_and_repeats_per_seed() -> None:
    def first_weight(net: nn.Module) -> torch.Tensor:
        return linear(net, "hidden1_linear").weight

    first = build_group([PLAIN, PLAIN], (1, 28, 28), 10, run_seed=7)
    assert not torch.equal(first_weight(first[0]), first_weight(first[1]))
    again = build_group([PLAIN, PLAIN], (1, 28, 28), 10, run_seed=7)
    assert torch.equal(first_weight(first[1]), first_weight(again[1]))
    other_seed = build_group([PLAIN, PLAIN], (1, 28, 28), 10, run_seed=8)
    assert not torch.equal(first_weight(first[0]), first_weight(other_seed[0]))


def test_building_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_group([PLAIN, BN], (1, 28, 28), 10, run_seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_net_is_a_plain_sequential_with_canonical_weight_names() -> None:
    net = build_model(BN, (1, 28, 28), 10, seed=0)
    assert type(net).__mro__[1] is nn.Sequential
    names = [name for name, _ in net.named_weights()]
    assert names[:4] == [
        "hidden1.linear.weight",
        "hidden1.linear.bias",
        "hidden1.bn.weight",
        "hidden1.bn.bias",
    ]
    x = torch.rand(5, 1, 28, 28)
    net.eval()
    out, outputs = net.forward_with_outputs(x)
    assert torch.equal(out, net(x)) and torch.equal(outputs[-1][1], out)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds_and_runs(activation: str) -> None:
    net = build_model(MLPModel(hidden=[8], activation=activation), (2,), 2, seed=0)
    assert isinstance(net.hidden1_act, ACTIVATIONS[activation])
    assert net(torch.randn(4, 2)).shape == (4, 2)
