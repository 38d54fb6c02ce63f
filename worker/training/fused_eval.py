"""Evaluations of stacked members: every member of a family in one eval-mode forward.

Member by member, each evaluation is a forward of the member's own net; for a small net most of
it is Python and dispatch, as in training. Here a family's members see the whole test set
through one stacked forward (in chunks of the size the member-by-member evaluation takes, shared
out among the members), so an evaluation costs about one member's. The values are the same
means, summed in another order: equal to float precision, as the fused training itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worker.training.stacked import Family


def _stacked(family: Family, x: torch.Tensor) -> torch.Tensor:
    """(members, examples, outputs) for the same examples x given to every member."""
    return family.forward(x.unsqueeze(0).expand(family.size, *x.shape), {}, False)


@torch.no_grad()
def evaluate(
    family: Family, x: torch.Tensor, y: torch.Tensor, task: str, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each member's mean loss (and accuracy for classification) in eval mode, as (members,)."""
    members = family.size
    total = torch.zeros(members, device=x.device)
    correct = torch.zeros(members, device=x.device)
    step = max(1, chunk // members)
    for start in range(0, len(x), step):
        out = _stacked(family, x[start : start + step])
        target = y[start : start + step]
        if task == "classification":
            losses = F.cross_entropy(
                out.reshape(-1, out.shape[-1]), target.repeat(members), reduction="none"
            )
            correct += (out.argmax(dim=2) == target).sum(dim=1)
        else:
            losses = F.mse_loss(out, target.expand_as(out), reduction="none")
        total += losses.reshape(members, -1).sum(dim=1)
    # mse_loss sums over every output; one output per example in the catalogue's regression.
    return total / len(x), (correct / len(x) if task == "classification" else None)


@torch.no_grad()
def predict(family: Family, x: torch.Tensor) -> torch.Tensor:
    """Each member's outputs on x in eval mode, flattened: (members, examples x outputs)."""
    return _stacked(family, x).reshape(family.size, -1)
