"""Plot parameters checked against what was stored: a bad one is a 422 listing what exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_PANELS = 12
MAX_FRAMES = 60


class PlotParamError(ValueError):
    """A plot parameter names something that does not exist; carries what does."""

    def __init__(self, param: str, message: str, allowed: Sequence[Any]) -> None:
        super().__init__(message)
        self.param, self.message, self.allowed = param, message, list(allowed)

    def detail(self) -> list[dict[str, Any]]:
        """FastAPI-shaped 422 detail: loc, msg, type, and the allowed values."""
        shown = ", ".join(map(str, self.allowed)) if self.allowed else "none yet"
        return [
            {
                "loc": ["query" if self.param != "name" else "path", self.param],
                "msg": f"{self.message}; available: {shown}",
                "type": "value_error",
                "ctx": {"allowed": self.allowed},
            }
        ]


def pick_seed(seeds: Sequence[int], seed: int | None) -> int:
    """The requested seed, or the first one."""
    if seed is None:
        return seeds[0]
    if seed not in seeds:
        raise PlotParamError("seed", f"no seed {seed} in this experiment", seeds)
    return seed


def resolve_layers(
    variants: Sequence[str],
    defaults: dict[str, str],
    captured: dict[str, set[str]],
    layer: str | None,
) -> dict[str, str]:
    """Variant -> layer to show: each one's default, or `layer` wherever it was captured."""
    if layer is None:
        return {v: defaults[v] for v in variants if defaults.get(v) in captured.get(v, set())}
    chosen = {v: layer for v in variants if layer in captured.get(v, set())}
    if not chosen:
        everything = sorted(set().union(*captured.values())) if captured else []
        raise PlotParamError("layer", f"layer '{layer}' was never captured", everything)
    return chosen


def select_steps(captured: Sequence[int], step: int | None, most: int) -> list[int]:
    """The one requested step (which must have been captured), or at most `most` spread out."""
    if step is not None:
        if step not in captured:
            raise PlotParamError("step", f"step {step} was never captured", captured)
        return [step]
    return subsample(list(captured), most)


def subsample(items: list[Any], most: int) -> list[Any]:
    """At most `most` items, evenly spread, first and last always kept."""
    if len(items) <= most:
        return items
    if most <= 1:
        return items[-1:]
    picks = {round(i * (len(items) - 1) / (most - 1)) for i in range(most)}
    return [items[i] for i in sorted(picks)]
