"""Dropout masks of fused members, drawn as the member-by-member loop draws them.

Alone, each member's dropout calls `bernoulli_(1 - p)` on its seed's generator, variant after
variant, layer after layer, then divides by 1 - p. Fused, the same draws come from the same
generators in the same order. Where torch's CPU bernoulli_ is a float64 uniform draw compared
with 1 - p (its default kernel; with MKL on some CPUs it is another stream), one uniform draw
per seed and step gives every mask of that seed at once, which saves most of the per-draw cost
of a small net's step; that equivalence is checked once per process, values and generator state,
and where it does not hold the masks are drawn one bernoulli_ per member layer, as before.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from worker.training.stacked import Drop, Family

# (seed index, key of its family, index in the family, its dropouts), one per member, in the
# member-by-member loop's order: seed by seed, variant by variant.
Placed = tuple[int, Any, int, list[Drop]]
Masks = dict[Any, dict[int, torch.Tensor]]


def _uniform(out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Float64 uniform draws into `out`: what bernoulli_'s default CPU kernel compares with p."""
    return out.uniform_(generator=generator)


@functools.cache
def uniform_matches_bernoulli() -> bool:
    """Whether here `bernoulli_(p)` equals `_uniform < p`, in values and the generator's state."""
    for size, p in ((1, 0.5), (1000, 0.8), (4099, 0.37)):
        alone, batched = torch.Generator(), torch.Generator()
        alone.manual_seed(20251201 + size)
        batched.manual_seed(20251201 + size)
        drawn = torch.empty(size).bernoulli_(p, generator=alone)
        emulated = _uniform(torch.empty(size, dtype=torch.float64), batched) < p
        if not torch.equal(drawn, emulated.float()):
            return False
        if not torch.equal(alone.get_state(), batched.get_state()):
            return False
    return True


def mask_shape(family: Family, drop: Drop, batch: int) -> tuple[int, ...]:
    """The noise shape torch's dropout draws for one member's layer output."""
    out_shape = family.out_shapes[drop.slot]
    if drop.kind == "dropout2d":
        return (batch, out_shape[0], *(1,) * (len(out_shape) - 1))
    return (batch, *out_shape)


@dataclass
class _Plan:
    """Where each seed's draws go for one batch size and set of active members."""

    spans: list[tuple[int, int, int]]  # seed index, start, end in `uniform`
    uniform: torch.Tensor  # float64 draws, then a stretch left at 0
    keep: torch.Tensor  # float64, 1 - p per element (then 1)
    scale: torch.Tensor  # float32, 1 / (1 - p) per element as dropout's div_ rounds it (then 1)
    # (family key, slot) -> start of each member's draw, its size, the stacked shape, the kind
    gathers: dict[tuple[Any, int], tuple[torch.Tensor, int, tuple[int, ...], str]]


class MaskDrawer:
    """Each step's stacked dropout masks, by family key and core layer (slot)."""

    def __init__(
        self,
        families: dict[Any, Family],
        placed: list[Placed],
        generators: list[torch.Generator],
        device: torch.device,
    ):
        self.families, self.placed, self.generators = families, placed, generators
        self.device = device
        self.batched = device.type == "cpu" and uniform_matches_bernoulli()
        self._ones: dict[tuple[int, ...], torch.Tensor] = {}
        self._plans: dict[tuple[int, tuple[bool, ...]], _Plan] = {}

    def draw(self, batch: int, active: tuple[bool, ...]) -> Masks:
        """This step's masks for members whose `active` entry (by position in `placed`) is set."""
        if not self.batched:
            return self._one_by_one(batch, active)
        key = (batch, active)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(batch, active)
        for index, start, end in plan.spans:
            _uniform(plan.uniform[start:end], self.generators[index])
        values = (plan.uniform < plan.keep) * plan.scale  # torch.where is 3x slower
        masks: Masks = {}
        for (family_key, slot), (rows, size, stacked, kind) in plan.gathers.items():
            # Every member's draw as a row starting at its offset: overlapping windows of
            # `values`, so one index_select copies each member's stretch whole.
            windows = values.as_strided((len(values) - size + 1, size), (1, 1))
            mask = windows.index_select(0, rows)
            if kind == "dropout2d":
                mask = mask.view(len(rows), stacked[0], -1).transpose(0, 1)
            masks.setdefault(family_key, {})[slot] = mask.reshape(stacked)
        return masks

    def _plan(self, batch: int, active: tuple[bool, ...]) -> _Plan:
        spans: list[tuple[int, int, int]] = []
        keeps: list[torch.Tensor] = []
        scales: list[torch.Tensor] = []
        # (family key, slot) -> per member in the family, the start of its draw (None: ones)
        starts: dict[tuple[Any, int], list[int | None]] = {}
        shapes: dict[tuple[Any, int], tuple[tuple[int, ...], str]] = {}
        offset = 0
        for position, (index, key, slot_index, drops) in enumerate(self.placed):
            if not drops or not active[position]:
                continue
            family = self.families[key]
            start = spans.pop()[1] if spans and spans[-1][0] == index else offset
            for drop in drops:
                shape = mask_shape(family, drop, batch)
                size = math.prod(shape)
                starts.setdefault((key, drop.slot), [None] * family.size)[slot_index] = offset
                shapes[(key, drop.slot)] = (shape, drop.kind)
                keeps.append(torch.full((size,), 1 - drop.p, dtype=torch.float64))
                # The same division dropout does, so each kept value rounds alike.
                scales.append(torch.ones(size).div_(1 - drop.p))
                offset += size
            spans.append((index, start, offset))
        # After the draws, a stretch that is never drawn: uniform 0 < keep 1, scale 1, the
        # mask of a member without that dropout.
        tail = max((math.prod(shape) for shape, _ in shapes.values()), default=0)
        keeps.append(torch.ones(tail, dtype=torch.float64))
        scales.append(torch.ones(tail))
        gathers = {}
        for place, member_starts in starts.items():
            rows = torch.tensor([offset if s is None else s for s in member_starts])
            shape, kind = shapes[place]
            if kind == "dropout2d":  # packed as (batch, members x channels, 1, 1)
                stacked = (batch, len(member_starts) * shape[1], *shape[2:])
            else:
                stacked = (len(member_starts), *shape)
            gathers[place] = (rows.to(self.device), math.prod(shape), stacked, kind)
        return _Plan(
            spans,
            torch.zeros(offset + tail, dtype=torch.float64, device=self.device),
            torch.cat(keeps).to(self.device),
            torch.cat(scales).to(self.device),
            gathers,
        )

    def _one_by_one(self, batch: int, active: tuple[bool, ...]) -> Masks:
        """One bernoulli_ per member layer, as the member-by-member loop's dropout draws."""
        drawn: dict[Any, dict[int, list[torch.Tensor | None]]] = {}
        shapes: dict[tuple[Any, int], tuple[int, ...]] = {}
        for position, (index, key, slot_index, drops) in enumerate(self.placed):
            if not drops or not active[position]:
                continue
            family = self.families[key]
            for drop in drops:
                shape = mask_shape(family, drop, batch)
                shapes[(key, drop.slot)] = shape
                noise = torch.empty(shape, device=self.device).bernoulli_(
                    1 - drop.p, generator=self.generators[index]
                )
                noise.div_(1 - drop.p)
                parts = drawn.setdefault(key, {}).setdefault(drop.slot, [None] * family.size)
                parts[slot_index] = noise
        masks: Masks = {}
        for key, by_slot in drawn.items():
            for slot, drawn_parts in by_slot.items():
                shape = shapes[(key, slot)]
                if shape not in self._ones:
                    self._ones[shape] = torch.ones(shape, device=self.device)
                filled = [self._ones[shape] if p is None else p for p in drawn_parts]
                if len(shape) == 4:  # dropout2d on packed (batch, members x channels, 1, 1)
                    masks.setdefault(key, {})[slot] = torch.cat(filled, dim=1)
                else:
                    masks.setdefault(key, {})[slot] = torch.stack(filled)
        return masks
