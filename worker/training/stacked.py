"""Members of one shape as one batched model: stacked parameters, batched matmuls, grouped convs.

A family is every member (seed x variant) whose layers agree once dropout is left out; dropout
rates may differ (a member without dropout at a place gets a mask of ones). Dense activations
are (members, batch, features); convolutional ones are packed as (batch, members x channels,
h, w), so a grouped convolution, a pool and BatchNorm2d act per member, and BatchNorm1d runs on
(batch, members x features). BatchNorm therefore keeps per-member statistics with torch's own
kernel. Each member's loss is its own mean; their sum's gradient is each member's own gradient,
and SGD, Adam and AdamW are elementwise, so each member trains as it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from worker.training.adam import StackedAdam
from worker.training.lockstep import Member, make_optimizer, make_scheduler, to_cpu

_ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU)
_DROPOUTS = (nn.Dropout, nn.Dropout2d)


def layer_signature(module: nn.Module) -> tuple[Any, ...] | None:
    """What must agree for a layer to be stacked; None for a layer the family cannot hold."""
    if isinstance(module, nn.Linear):
        return ("linear", module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, nn.Conv2d):
        m = module
        return ("conv", m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        if getattr(module, "noise", 0.0) or not module.affine or not module.track_running_stats:
            return None  # noisy BN draws from the RNG in its own order: not fused
        kind = "bn1d" if isinstance(module, nn.BatchNorm1d) else "bn2d"
        return (kind, module.num_features, module.eps, module.momentum)
    if isinstance(module, _ACTIVATIONS):
        return ("act", type(module).__name__, repr(module))
    if isinstance(module, nn.AvgPool2d | nn.MaxPool2d):
        return (type(module).__name__, module.kernel_size, module.stride)
    if isinstance(module, nn.Flatten):
        return ("flatten",)
    return None


def net_signature(net: nn.Module) -> tuple[Any, ...] | None:
    """A net's layers without its dropouts, or None if some layer cannot be stacked."""
    found = []
    for module in net:  # type: ignore[attr-defined]
        if isinstance(module, _DROPOUTS):
            continue
        signature = layer_signature(module)
        if signature is None:
            return None
        found.append(signature)
    return tuple(found)


@dataclass(frozen=True)
class Drop:
    """One dropout of a member: after core layer `slot`, its kind and rate."""

    slot: int
    kind: str  # dropout | dropout2d
    p: float


@dataclass(frozen=True)
class Seen:
    """One core layer's output in a stacked forward: before and after the dropout masks."""

    core: torch.Tensor
    masked: torch.Tensor
    packed: bool  # (batch, members x channels, h, w) rather than (members, batch, ...)


def member_drops(net: nn.Module) -> list[Drop]:
    """A member's dropouts in forward order, each placed after the core layer it follows."""
    drops, core = [], -1
    for module in net:  # type: ignore[attr-defined]
        if isinstance(module, _DROPOUTS):
            kind = "dropout2d" if isinstance(module, nn.Dropout2d) else "dropout"
            drops.append(Drop(core, kind, module.p))
        else:
            core += 1
    return drops


@torch.no_grad()
def _out_shapes(
    layers: list[nn.Module], input_shape: tuple[int, ...], device: torch.device
) -> list[tuple[int, ...]]:
    """Each core layer's output shape for one example (what a dropout after it masks)."""
    shapes = []
    x = torch.zeros((2, *input_shape), device=device)
    states = [layer.training for layer in layers]
    for layer in layers:
        layer.eval()
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    for layer, state in zip(layers, states, strict=True):
        layer.train(state)
    return shapes


class Family:
    """Members of one signature, trained as one model with one optimizer on stacked tensors."""

    def __init__(self, members: list[Member], spec: Any, epochs: int, input_shape: tuple[int, ...]):
        self.members = members
        self.size = len(members)
        nets = [m.net for m in members]
        self.cores = [[mod for mod in net if not isinstance(mod, _DROPOUTS)] for net in nets]
        self.kinds = [layer_signature(mod)[0] for mod in self.cores[0]]  # type: ignore[index]
        self.template = self.cores[0]
        self.params: list[list[nn.Parameter]] = []  # per core layer: stacked weight, bias
        self.buffers: list[list[torch.Tensor]] = []  # per core layer: running mean, var, count
        with torch.no_grad():
            for position, kind in enumerate(self.kinds):
                layers = [core[position] for core in self.cores]
                names = ["weight", "bias"] if kind in ("linear", "conv", "bn1d", "bn2d") else []
                stacked = [
                    nn.Parameter(torch.stack([getattr(layer, n).detach() for layer in layers]))
                    for n in names
                    if getattr(layers[0], n) is not None
                ]
                self.params.append(stacked)
                bufs = []
                if kind in ("bn1d", "bn2d"):
                    bufs = [
                        torch.cat([_buffer(layer, "running_mean") for layer in layers]).clone(),
                        torch.cat([_buffer(layer, "running_var") for layer in layers]).clone(),
                        torch.stack([_buffer(layer, "num_batches_tracked") for layer in layers]),
                    ]
                self.buffers.append(bufs)
        device = next(nets[0].parameters()).device
        self.out_shapes = _out_shapes(self.template, input_shape, device)
        flat = [p for layer in self.params for p in layer]
        self.optimizer = _optimizer(flat, spec.optimizer)
        self.scheduler = make_scheduler(self.optimizer, spec.schedule, epochs)

    def forward(
        self,
        x: torch.Tensor,
        masks: dict[int, torch.Tensor],
        train: bool,
        seen: list[Seen] | None = None,
    ) -> torch.Tensor:
        """Outputs (members, batch, outputs) of x (members, batch, ...); masks by core layer.

        Given a list, each core layer's output is appended to it (detached), as a Seen.
        """
        m, b = x.shape[0], x.shape[1]
        packed = False  # (batch, members x channels, h, w) once a conv has run
        h = x
        for position, kind in enumerate(self.kinds):
            params, module = self.params[position], self.template[position]
            if kind == "flatten":
                h = h.reshape(b, m, -1).transpose(0, 1) if packed else h.reshape(m, b, -1)
                packed = False
            elif kind == "linear":
                offset = params[1] if len(params) > 1 else None
                h = cast(torch.Tensor, _Linear.apply(h, params[0], offset))
            elif kind == "conv":
                if not packed:
                    h, packed = h.transpose(0, 1).reshape(b, -1, *h.shape[3:]), True
                bias = params[1].reshape(-1) if len(params) > 1 else None
                conv = cast(nn.Conv2d, module)
                h = F.conv2d(h, params[0].flatten(0, 1), bias, conv.stride, conv.padding, groups=m)
            elif kind in ("bn1d", "bn2d"):
                mean, var, count = self.buffers[position]
                if train:
                    count.add_(1)
                flat = h if packed else h.transpose(0, 1).reshape(b, -1)
                flat = F.batch_norm(
                    flat,
                    mean,
                    var,
                    params[0].reshape(-1),
                    params[1].reshape(-1),
                    train,
                    cast(float, module.momentum),
                    cast(float, module.eps),
                )
                h = flat if packed else flat.view(b, m, -1).transpose(0, 1)
            else:  # activation or pool: per element or per channel, in either layout
                h = module(h)
            core = h
            mask = masks.get(position)
            if mask is not None:
                h = h * mask
            if seen is not None:
                seen.append(Seen(core.detach(), h.detach(), packed))
        return h

    def member_outputs(self, seen: list[Seen], index: int) -> list[tuple[str, torch.Tensor]]:
        """Member `index`'s probed layer outputs from forward's `seen`, by its net's names."""
        net = self.members[index].net
        outputs, position = [], -1
        for name, module in zip(net.probe_names, net, strict=True):
            dropout = isinstance(module, _DROPOUTS)
            if not dropout:  # a dropout's output is the core layer's before it, masked
                position += 1
            if name is None:
                continue
            layer = seen[position]
            t = layer.masked if dropout else layer.core
            if layer.packed:  # (batch, members x channels, h, w)
                channels = t.shape[1] // self.size
                t = t[:, index * channels : (index + 1) * channels]
            else:
                t = t[index]
            outputs.append((name, t))
        return outputs

    @torch.no_grad()
    def unstack(self, grads: bool = False) -> None:
        """Write each member's slice (and, if asked, its gradients) into its own net."""
        for position in range(len(self.kinds)):
            layers = [core[position] for core in self.cores]
            names = [n for n in ("weight", "bias") if getattr(layers[0], n, None) is not None]
            for name, stacked in zip(names, self.params[position], strict=False):
                for i, layer in enumerate(layers):
                    target = getattr(layer, name)
                    target.copy_(stacked[i])
                    if grads:
                        target.grad = None if stacked.grad is None else stacked.grad[i].clone()
            if self.buffers[position]:
                mean, var, count = self.buffers[position]
                for i, layer in enumerate(layers):
                    _buffer(layer, "running_mean").copy_(mean.view(self.size, -1)[i])
                    _buffer(layer, "running_var").copy_(var.view(self.size, -1)[i])
                    _buffer(layer, "num_batches_tracked").copy_(count[i])

    def state_dict(self) -> dict[str, Any]:
        """Stacked tensors, optimizer and schedule, copied to the CPU."""
        return to_cpu(
            {
                "params": [p.detach() for layer in self.params for p in layer],
                "buffers": [t for layer in self.buffers for t in layer],
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            }
        )

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict saved."""
        params = [p for layer in self.params for p in layer]
        for target, value in zip(params, state["params"], strict=True):
            target.copy_(value)
        buffers = [t for layer in self.buffers for t in layer]
        for buffer, value in zip(buffers, state["buffers"], strict=True):
            buffer.copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


class _Linear(torch.autograd.Function):
    """Stacked x @ W^T + b whose backward writes W's gradient in W's own layout.

    Autograd's baddbmm backward computes it as (x^T g)^T and then copies it into place: a
    transposed copy of every weight at every step, a tenth of the dropout study's fused step.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: Any) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def _optimizer(params: list[nn.Parameter], spec: Any) -> torch.optim.Optimizer:
    """The spec's optimizer over stacked tensors: foreach, and Adam's square root zero-safe."""
    if spec.name in ("adam", "adamw"):
        decoupled = spec.name == "adamw"  # torch's AdamW is this Adam
        return StackedAdam(
            params,
            lr=spec.lr,
            weight_decay=spec.weight_decay,
            decoupled_weight_decay=decoupled,
            foreach=True,
        )
    optimizer = make_optimizer(params, spec)
    for group in optimizer.param_groups:
        group["foreach"] = True  # a few stacked tensors: one dispatch per op, not per tensor
    return optimizer


def _buffer(layer: nn.Module, name: str) -> torch.Tensor:
    """A BatchNorm layer's registered buffer (nn.Module's attributes are typed too loosely)."""
    return cast(torch.Tensor, getattr(layer, name))
