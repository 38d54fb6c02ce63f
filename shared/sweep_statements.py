"""A sweep's findings said in sentences with numbers: where each variant trains, how the
variants compare at the value that suits each best, where one beats another, what diverged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _short(axis: str, axes: Sequence[str]) -> str:
    """The axis' last segment where that is unambiguous, else its full path."""
    last = axis.rsplit(".", 1)[-1]
    return last if [a.rsplit(".", 1)[-1] for a in axes].count(last) == 1 else axis


def _value(found: dict[str, Any]) -> str:
    text = f"{found['mean']:.4g}"
    return text if found["n"] < 2 else f"{text} ± {found['std']:.2g}"


def statements(f: dict[str, Any]) -> list[str]:
    """Sentences with numbers: where each variant trains, how they compare at their best."""
    out = []
    axes, metric = f["axes"], f["metric"]
    for axis in axes:
        name = _short(axis, axes)
        for v, up in f["trains_up_to"][axis].items():
            if up["value"] is None:
                out.append(f"{v} trains at no {name} tried")
            elif up["next"] is None:
                out.append(f"{v} trains at every {name} tried, up to {up['value']:g}")
            else:
                out.append(
                    f"{v} trains up to {name} = {up['value']:g}; at {up['next']:g} "
                    f"{up['why_not_next']}"
                )
        best = f["best"][axis]
        if best:
            parts = [f"{v} {_value(b['final'])} at {name} = {b['value']}" for v, b in best.items()]
            out.append(f"{metric} at the {name} that suits each best: " + "; ".join(parts))
    for p in f["pairs"]:
        for winner, loser, where in (
            (p["b"], p["a"], p["b_better"]),
            (p["a"], p["b"], p["a_better"]),
        ):
            if where:
                at = ", ".join(
                    " ".join(f"{_short(k, axes)}={val}" for k, val in w.items()) for w in where
                )
                out.append(f"{winner} beats {loser} on {metric} in every seed at {at}")
    by_point: dict[tuple[int, str], list[int]] = {}
    for d in f["diverged"]:
        by_point.setdefault((d["index"], d["variant"]), []).append(d["seed"])
    for (index, v), seeds in sorted(by_point.items()):
        values = f["points"][index]["values"] if index < len(f["points"]) else {}
        at = " ".join(f"{_short(k, axes)}={val}" for k, val in values.items())
        out.append(f"{v} diverged at {at} in seeds {sorted(seeds)}")
    return out
