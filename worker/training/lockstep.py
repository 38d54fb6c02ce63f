"""One seed's lockstep group: every variant's net, optimizer and schedule, and their state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shared.datasets import CATALOG
from shared.spec import ExperimentSpec, OptimizerSpec, ScheduleSpec
from worker.training.models import Net, build_group


def resolve_device(requested: str) -> torch.device:
    """The torch device for a spec's device: "auto" is CUDA when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but CUDA is not available here")
    return torch.device(requested)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states (dropout draws) of the CPU and the device."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what rng_state saved."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass
class Member:
    """One variant being trained: its net, optimizer, schedule and which inputs it sees."""

    name: str
    net: Net
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    normalize: bool


def make_optimizer(params: Any, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The optimizer a spec names."""
    if spec.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
        )
    cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return cls(params, lr=spec.lr, weight_decay=spec.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, spec: ScheduleSpec, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-epoch learning-rate schedule a spec names, or None."""
    if spec.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, spec.step_size, spec.gamma)
    if spec.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def build_members(spec: ExperimentSpec, run_seed: int, device: torch.device) -> list[Member]:
    """Fresh nets (built on the CPU so every device starts from the same weights) and optimizers."""
    info = CATALOG[spec.dataset.name]
    nets = build_group(
        [v.model for v in spec.variants],
        info.input_shape,
        info.num_outputs,
        run_seed,
        spec.training.init,
    )
    members = []
    for variant, net in zip(spec.variants, nets, strict=True):
        net.to(device)
        optimizer = make_optimizer(net.parameters(), spec.training.optimizer)
        scheduler = make_scheduler(optimizer, spec.training.schedule, spec.training.epochs)
        members.append(Member(variant.name, net, optimizer, scheduler, variant.normalize_inputs))
    return members


def loss_function(task: str) -> Any:
    """Cross-entropy for classification, mean squared error for regression."""
    return F.cross_entropy if task == "classification" else F.mse_loss


def train_step(
    member: Member, x: torch.Tensor, y: torch.Tensor, loss_fn: Any, probe: bool = False
) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """One optimizer update: the loss on the device (no host synchronisation), and if `probe`,
    every probed layer's output in this update's forward (detached), else an empty list."""
    member.optimizer.zero_grad(set_to_none=True)
    outputs: list[tuple[str, torch.Tensor]] = []
    if probe:
        out, seen = member.net.forward_with_outputs(x)
        # Detached, the outputs keep only their own memory, not the graph, once backward is done.
        outputs = [(name, t.detach()) for name, t in seen]
    else:
        out = member.net(x)
    loss = loss_fn(out, y)
    loss.backward()
    member.optimizer.step()
    return loss.detach(), outputs


@torch.no_grad()
def evaluate(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean loss (and accuracy for classification) in eval mode, as device scalars."""
    was_training = net.training
    net.eval()
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    reduce = F.cross_entropy if task == "classification" else F.mse_loss
    for start in range(0, len(x), chunk):
        out = net(x[start : start + chunk])
        target = y[start : start + chunk]
        total += reduce(out, target, reduction="sum")
        if task == "classification":
            correct += (out.argmax(dim=1) == target).sum()
    net.train(was_training)
    # mse_loss sums over every output; one output per example in the catalogue's regression.
    return total / len(x), (correct / len(x) if task == "classification" else None)


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The net's outputs on x in eval mode (regression prediction curves)."""
    was_training = net.training
    net.eval()
    out = net(x)
    net.train(was_training)
    return out.reshape(-1)


def to_cpu(obj: Any) -> Any:
    """A deep copy with every tensor on the CPU, safe to keep while training mutates the source."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def group_state(members: list[Member]) -> dict[str, list[Any]]:
    """Nets, optimizers and schedules of a group, copied to the CPU."""
    return {
        "nets": [to_cpu(m.net.state_dict()) for m in members],
        "optimizers": [to_cpu(m.optimizer.state_dict()) for m in members],
        "schedulers": [to_cpu(m.scheduler.state_dict()) if m.scheduler else None for m in members],
    }


def load_group_state(members: list[Member], state: dict[str, list[Any]]) -> None:
    """Restore what group_state saved into freshly built members."""
    for member, net, opt, sched in zip(
        members, state["nets"], state["optimizers"], state["schedulers"], strict=True
    ):
        member.net.load_state_dict(net)
        member.optimizer.load_state_dict(opt)
        if member.scheduler is not None:
            member.scheduler.load_state_dict(sched)
