"""Figures of the optimisation probes: Santurkar et al. (2018) Fig. 4's bands, and ICS."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from api.plots.style import empty, new_figure, palette

LINESTYLES = ("-", "--", ":", "-.")


def _array(values: list[Any]) -> np.ndarray:
    return np.asarray(values, dtype=float)  # None becomes NaN: a gap


def _colors(data: dict[str, Any]) -> dict[str, str]:
    return palette(data.get("variants") or [s["label"] for s in data["series"]])


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
    multipliers = ", ".join(f"{m:g}" for m in data.get("multipliers", []))
    seeds = len(data.get("seeds", []))
    axes[0].set_title(
        f"Landscape along the gradient: steps of ({multipliers}) x lr {data.get('lr', 0):g}; "
        f"band = range over the step sizes, mean of {seeds} seed(s)"
    )
    axes[-1].set_xlabel("training step")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="best")
    return fig


def ics(data: dict[str, Any]) -> Figure:
    """ICS by the gradient definition: per variant and layer, the l2 distance and the cosine of
    a layer's gradient before and after the layers below it take their step."""
    fig = new_figure(8, 6.5)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.08, top=0.93, hspace=0.3)
    top, bottom = fig.subplots(2, 1, sharex=True)
    colors = _colors(data)
    styles: dict[str, str] = {}
    for s in data["series"]:
        style = styles.setdefault(s["layer"], LINESTYLES[len(styles) % len(LINESTYLES)])
        steps, line = _array(s["steps"]), {"color": colors[s["label"]], "linestyle": style}
        label = f"{s['label']} {s['layer']}"
        top.plot(steps, _array(s["l2"]), label=label, linewidth=1.1, **line)
        bottom.plot(steps, _array(s["cosine"]), linewidth=1.1, **line)
    if not any(s["steps"] for s in data["series"]):
        empty(top)
    seeds = len(data.get("seeds", []))
    top.set_title(f"Internal covariate shift (Santurkar et al. Def. 2.1), mean of {seeds} seed(s)")
    top.set_ylabel("l2 distance of the gradients")
    bottom.set_ylabel("cosine of the gradients")
    bottom.set_xlabel("training step")
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="best", fontsize=7, ncol=2)
    return fig
