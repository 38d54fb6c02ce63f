"""Figures of the optimisation probes: Santurkar et al. (2018) Fig. 4's bands, and ICS."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from api.plots.style import empty, new_figure, palette


def _array(values: list[Any]) -> np.ndarray:
    return np.asarray(values, dtype=float)  # None becomes NaN: a gap


def _colors(data: dict[str, Any]) -> dict[str, str]:
    return palette(data.get("variants") or [s["label"] for s in data["series"]])


def _positive(series: list[dict[str, Any]], key: str) -> bool:
    values = np.concatenate([_array(s[key]) for s in series])
    values = values[np.isfinite(values)]
    return bool(values.size) and bool((values > 0).all())


def landscape(data: dict[str, Any]) -> Figure:
    """Per variant against training step: the loss and gradient-change bands over the step
    sizes along the gradient, and the effective beta-smoothness."""
    fig = new_figure(8, 8)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.07, top=0.93, hspace=0.35)
    axes = fig.subplots(3, 1, sharex=True)
    colors = _colors(data)
    panels = (
        ("loss_min", "loss_max", "loss along the gradient"),
        ("grad_change_min", "grad_change_max", "l2 change of the gradient"),
        ("beta", None, "effective beta-smoothness"),
    )
    for ax, (low, high, ylabel) in zip(axes, panels, strict=True):
        for s in data["series"]:
            steps, color = _array(s["steps"]), colors[s["label"]]
            if high is None:
                ax.plot(steps, _array(s[low]), color=color, label=s["label"], linewidth=1.2)
            else:
                ax.fill_between(
                    steps, _array(s[low]), _array(s[high]), color=color, alpha=0.3, linewidth=0.6,
                    edgecolor=color, label=s["label"],
                )  # fmt: skip
        ax.set_ylabel(ylabel)
        if not any(s["steps"] for s in data["series"]):
            empty(ax)
        elif _positive(data["series"], low):
            ax.set_yscale("log")  # a plain deep net's band can be 100 times a BN net's
    multipliers = ", ".join(f"{m:g}" for m in data.get("multipliers", []))
    seeds = len(data.get("seeds", []))
    axes[0].set_title(
        f"Landscape along the gradient: steps of ({multipliers}) x lr {data.get('lr', 0):g}\n"
        f"band: range over the step sizes; mean of {seeds} seed(s)"
    )
    axes[-1].set_xlabel("training step")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="best")
    return fig


def ics(data: dict[str, Any]) -> Figure:
    """ICS by the gradient definition: per variant, the l2 distance and the cosine of a layer's
    gradient before and after the layers below it take their step; thin lines are the layers,
    the thick one their mean."""
    fig = new_figure(8, 6.5)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.08, top=0.9, hspace=0.3)
    top, bottom = fig.subplots(2, 1, sharex=True)
    colors = _colors(data)
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for s in data["series"]:
        by_variant.setdefault(s["label"], []).append(s)
    for variant, layers in by_variant.items():
        color = colors[variant]
        for ax, key in ((top, "l2"), (bottom, "cosine")):
            for s in layers:
                ax.plot(_array(s["steps"]), _array(s[key]), color=color, alpha=0.3, linewidth=0.7)
            steps = sorted({step for s in layers for step in s["steps"]})
            values = [dict(zip(s["steps"], _array(s[key]), strict=True)) for s in layers]
            mean = [np.nanmean([v.get(step, np.nan) for v in values]) for step in steps]
            label = variant if ax is top else None
            ax.plot(_array(steps), _array(mean), color=color, linewidth=1.8, label=label)
    if not any(s["steps"] for s in data["series"]):
        empty(top)
    seeds = len(data.get("seeds", []))
    top.set_title(
        "Internal covariate shift (Santurkar et al., Def. 2.1)\n"
        f"thin: each layer; thick: mean over layers; mean of {seeds} seed(s)"
    )
    top.set_ylabel("l2 distance of the gradients")
    bottom.set_ylabel("cosine of the gradients")
    bottom.set_xlabel("training step")
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="best")
    return fig
