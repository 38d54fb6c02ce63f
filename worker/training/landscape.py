"""The optimisation probes: does BatchNorm steady distributions, or smooth the loss?

Each measure is a pure function of a net, a batch and a learning rate, computed on the device with
`torch.func.functional_call`, so the net's parameters are never written: the probes read the
weights a training step left and hand back device scalars. Train-mode forwards would advance
BatchNorm's running statistics and the dropout (and noisy-BN) RNG; every forward here gets fresh
copies of the buffers and starts from the same saved RNG state, which is restored afterwards, so
training runs bit for bit as it would without the probes (tests/unit/test_landscape.py).

- landscape (Santurkar et al. 2018, Fig. 4): loss and gradient at theta - eta_k g for step sizes
  eta_k = multiplier_k x lr along the negative gradient g of the batch loss.
- ics (Santurkar et al. 2018, Definition 2.1): per weight layer, its gradient before and after
  every layer below it takes a plain gradient step of size lr on the same batch.
- norms: each layer's weight and the gradient of the training step just taken.
- unit_input (Ioffe & Szegedy 2015, Fig. 1): 15th/50th/85th percentiles of one unit's input to
  the last hidden activation, on the same test examples every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from worker.training.models import Net

Params = dict[str, torch.Tensor]
UNIT_PERCENTILES = (15, 50, 85)


@contextmanager
def frozen_randomness(device: torch.device) -> Iterator[Any]:
    """Yields a reset() that puts the global RNG back to its state on entry; restores it on exit."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def reset() -> None:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)

    try:
        yield reset
    finally:
        reset()


def parameters(net: nn.Module) -> Params:
    """The net's parameters, detached (the same storage: never written here)."""
    return {name: p.detach() for name, p in net.named_parameters()}


def loss_and_grad(
    net: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, loss_fn: Any
) -> tuple[torch.Tensor, Params]:
    """Batch loss at `params` in train mode, and its gradient; buffers are copies, left alone."""
    buffers = {name: b.clone() for name, b in net.named_buffers()}
    leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    with torch.enable_grad():
        loss = loss_fn(functional_call(net, (leaves, buffers), (x,)), y)
        grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), dict(zip(leaves, grads, strict=True))


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """l2 norm of the tensors taken as one vector."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


@dataclass(frozen=True)
class Landscape:
    """Per step size: the loss, the l2 change of the gradient, and the distance moved."""

    losses: torch.Tensor
    grad_changes: torch.Tensor
    distances: torch.Tensor

    def summary(self) -> dict[str, torch.Tensor]:
        """The stored series: loss band, gradient-change band, effective beta-smoothness."""
        return {
            "landscape_loss_min": self.losses.min(),
            "landscape_loss_max": self.losses.max(),
            "landscape_grad_change_min": self.grad_changes.min(),
            "landscape_grad_change_max": self.grad_changes.max(),
            "landscape_beta": (self.grad_changes / self.distances).max(),
        }


def landscape(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Any,
    lr: float,
    multipliers: list[float],
    reset: Any,
) -> Landscape:
    """Loss and gradient at theta - (m lr) g for each multiplier m, against those at theta."""
    theta = parameters(net)
    reset()
    _, g = loss_and_grad(net, theta, x, y, loss_fn)
    g_norm = _norm(list(g.values()))
    losses, changes, distances = [], [], []
    for m in multipliers:
        eta = m * lr
        moved = {k: theta[k] - eta * g[k] for k in theta}
        reset()  # the same dropout masks and BN noise at every point
        loss, grad = loss_and_grad(net, moved, x, y, loss_fn)
        losses.append(loss)
        changes.append(_norm([grad[k] - g[k] for k in g]))
        distances.append(eta * g_norm)
    return Landscape(torch.stack(losses), torch.stack(changes), torch.stack(distances))


def weight_layers(net: Net) -> list[tuple[int, str]]:
    """(position, canonical name) of each Linear/Conv in forward order."""
    return [
        (i, net.canonical[key])
        for i, (key, module) in enumerate(net.named_children())
        if isinstance(module, nn.Linear | nn.Conv2d)
    ]


def ics(
    net: Net, x: torch.Tensor, y: torch.Tensor, loss_fn: Any, lr: float, reset: Any
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Layer -> (l2 distance, cosine) of its weight gradient before and after the layers below
    it take a gradient step of size lr; every weight layer but the first (nothing is below it)."""
    theta = parameters(net)
    reset()
    _, g = loss_and_grad(net, theta, x, y, loss_fn)
    positions = {key: i for i, key in enumerate(k for k, _ in net.named_children())}
    out = {}
    for position, layer in weight_layers(net)[1:]:
        below = {k for k in theta if positions[k.split(".")[0]] < position}
        shifted = {k: theta[k] - lr * g[k] if k in below else theta[k] for k in theta}
        reset()
        _, after = loss_and_grad(net, shifted, x, y, loss_fn)
        key = f"{list(net.named_children())[position][0]}.weight"
        before, now = g[key].reshape(-1), after[key].reshape(-1)
        distance = torch.linalg.vector_norm(now - before)
        cosine = torch.nn.functional.cosine_similarity(now, before, dim=0)
        out[layer] = (distance, cosine)
    return out


def norms(net: Net) -> dict[str, torch.Tensor]:
    """`weight_norm:<layer>.weight` and `grad_norm:<layer>.weight` of every layer with weights."""
    named = [(name, p) for name, p in net.named_weights() if name.endswith(".weight")]
    out = dict(
        zip(
            [f"weight_norm:{name}" for name, _ in named],
            torch._foreach_norm([p.detach() for _, p in named]),
            strict=True,
        )
    )
    with_grad = [(name, p.grad) for name, p in named if p.grad is not None]
    if with_grad:
        grads = torch._foreach_norm([g for _, g in with_grad])
        out.update({f"grad_norm:{name}": n for (name, _), n in zip(with_grad, grads, strict=True)})
    return out


@torch.no_grad()
def unit_input(
    net: Net, x: torch.Tensor, unit: int, mode: str = "train"
) -> dict[str, torch.Tensor]:
    """15th, 50th and 85th percentiles of one unit's input to the last hidden activation on x.

    "train": as the activation sees it in training (BN on x's own statistics, dropout and noise
    drawn), leaving running statistics and the RNG as they were; "eval": running statistics, no
    dropout, no noise. The unit is clamped to the layer's width.
    """
    was_training = net.training
    net.train(mode == "train")
    saved = [b.clone() for b in net.buffers()]
    with frozen_randomness(x.device):
        _, outputs = net.forward_with_outputs(x)
    for buffer, value in zip(net.buffers(), saved, strict=True):
        buffer.copy_(value)
    net.train(was_training)
    last = max(i for i, (name, _) in enumerate(outputs) if name.endswith(".act"))
    values = outputs[last - 1][1].reshape(len(x), -1)
    column = values[:, min(unit, values.shape[1] - 1)].double()
    levels = torch.tensor([p / 100 for p in UNIT_PERCENTILES], dtype=column.dtype, device=x.device)
    found = torch.quantile(column, levels)
    return {f"unit_input_p{p}": found[i] for i, p in enumerate(UNIT_PERCENTILES)}
