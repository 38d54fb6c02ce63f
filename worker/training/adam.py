"""Adam and AdamW for stacked members, bit for bit torch's foreach step, without a slow sqrt.

On the CPU torch's sqrt takes about 4 ns for each element that is exactly 0 (against 0.2 ns for
any other value), and Adam takes the square root of its second moments, which stay 0 for every
weight of a unit that never fired: a third of the dropout study's stacked 100x100 weights, so
the sqrt was the costliest op of a fused step. Raised to the smallest normal float first, a 0 or
denormal moment gives sqrt 1e-19, which the division and `+ eps` that follow round away: the
denominator equals torch's bit for bit as long as eps is above about 1e-10 (its default is
1e-8). Everything else is torch's foreach step, op for op, which a check once per process
proves (values and state, after a few steps of both); where it fails, torch's own step runs.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

_TINY = torch.finfo(torch.float32).tiny


class StackedAdam(torch.optim.Adam):
    """torch.optim.Adam (AdamW with `decoupled_weight_decay`), with a zero-safe square root."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """One update; torch's own where the zero-safe step does not apply or is not proven."""
        if closure is not None or not all(map(_plain, self.param_groups)) or not _proven():
            return super().step(closure)
        for group in self.param_groups:
            _step_group(self, group)
        return None


def _plain(group: dict[str, Any]) -> bool:
    """Whether the group is the case the zero-safe step covers: float32 on the CPU, no options."""
    beta2 = group["betas"][1]
    rounded_away = math.sqrt(_TINY) / math.sqrt(1 - beta2) < group["eps"] * 2.0**-25
    options = ("amsgrad", "maximize", "capturable", "differentiable", "fused")
    return (
        rounded_away
        and not any(group.get(o) for o in options)
        and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in group["params"])
    )


def _step_group(optimizer: torch.optim.Adam, group: dict[str, Any]) -> None:
    params = [p for p in group["params"] if p.grad is not None]
    if not params:
        return
    grads = [p.grad for p in params]
    for p in params:
        state = optimizer.state[p]
        if not state:  # as torch's first step makes it, so checkpoints look the same
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    states = [optimizer.state[p] for p in params]
    steps = [s["step"] for s in states]
    exp_avgs = [s["exp_avg"] for s in states]
    exp_avg_sqs = [s["exp_avg_sq"] for s in states]
    lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
    decay = group["weight_decay"]
    torch._foreach_add_(steps, 1.0)
    if decay != 0:
        if group["decoupled_weight_decay"]:
            torch._foreach_mul_(params, 1 - lr * decay)
        else:
            grads = list(torch._foreach_add(grads, params, alpha=decay))
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    counts = [s.item() for s in steps]
    step_size = [(lr / (1 - beta1**n)) * -1 for n in counts]
    correction2 = [(1 - beta2**n) ** 0.5 for n in counts]
    denom = torch._foreach_clamp_min(exp_avg_sqs, _TINY)  # the zero-safe part
    torch._foreach_sqrt_(denom)
    torch._foreach_div_(denom, correction2)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)


@functools.cache
def _proven() -> bool:
    """Whether the zero-safe step equals torch's foreach step here, for Adam and AdamW."""
    for decay, decoupled in ((0.0, False), (0.01, False), (0.01, True)):
        made = torch.Generator().manual_seed(7)
        start = [torch.randn(shape, generator=made) for shape in ((3, 40, 17), (3, 17))]
        for t in start:
            t[:, ::3] = 0.0  # units that never fire: exactly-zero moments
        grads = [[torch.randn(t.shape, generator=made) * (t != 0) for t in start] for _ in range(4)]
        grads[2] = [g * 1e-30 for g in grads[2]]  # and denormal ones
        results = []
        for cls in (torch.optim.Adam, StackedAdam):
            params = [torch.nn.Parameter(t.clone()) for t in start]
            optimizer = cls(
                params, lr=0.01, weight_decay=decay, decoupled_weight_decay=decoupled, foreach=True
            )
            for step_grads in grads:
                for p, g in zip(params, step_grads, strict=True):
                    p.grad = g.clone()
                if cls is StackedAdam:
                    _step_all(optimizer)
                else:
                    optimizer.step()
            results.append((params, [optimizer.state[p] for p in params]))
        (want, want_states), (got, got_states) = results
        for p, q, s, r in zip(want, got, want_states, got_states, strict=True):
            if not torch.equal(p, q) or s.keys() != r.keys():
                return False
            if not all(torch.equal(s[k], r[k]) for k in s):
                return False
    return True


def _step_all(optimizer: torch.optim.Adam) -> None:
    with torch.no_grad():
        for group in optimizer.param_groups:
            _step_group(optimizer, group)
