"""Figures of how training went: loss per step, evaluations, and the regression fit."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from api.plots.style import empty, fmt_loss, new_figure, palette


def _array(values: list[Any]) -> np.ndarray:
    # None (a non-finite value in the JSON) becomes NaN, which matplotlib leaves as a gap.
    return np.asarray(values, dtype=float)


def _band_line(
    ax: Axes, agg: dict[str, list[Any]], color: str, label: str | None, band: bool, **line: Any
) -> None:
    """The mean line, and the min..max band across seeds when there is more than one seed."""
    steps = _array(agg["steps"])
    if band:
        ax.fill_between(
            steps, _array(agg["min"]), _array(agg["max"]), color=color, alpha=0.2, linewidth=0
        )
    ax.plot(steps, _array(agg["mean"]), color=color, label=label, **line)


def _colors(data: dict[str, Any]) -> dict[str, str]:
    return palette(data.get("variants") or [s["label"] for s in data["series"]])


def loss(data: dict[str, Any]) -> Figure:
    """Train loss per step of every variant on one axis; min..max band across seeds."""
    fig = new_figure(8, 4.5)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.11, top=0.93)
    ax = fig.add_subplot()
    colors = _colors(data)
    for s in data["series"]:
        n = len(s["seeds"])
        label = s["label"] if n == 1 else f"{s['label']} (mean, min..max of {n} seeds)"
        _band_line(ax, s, colors[s["label"]], label, n > 1, linewidth=1.2)
    if not any(s["steps"] for s in data["series"]):
        empty(ax)
    smooth = data.get("smooth") or 1
    title = data.get("title", "Training loss per step")
    ax.set_title(title + (f" (moving average of {smooth})" if smooth > 1 else ""))
    ax.set_xlabel("step")
    ax.set_ylabel("train loss")
    if ax.get_legend_handles_labels()[0]:
        # "best" scans the lines' points; cheap at the <= 2000 points per line drawn here.
        ax.legend(loc="best")
    return fig


def evaluation(data: dict[str, Any]) -> Figure:
    """Test loss (with the train loss it is compared with), test accuracy, and their gap."""
    classification = data["task"] == "classification"
    panels = 3 if classification else 2
    fig = new_figure(4 * panels, 3.8)
    fig.subplots_adjust(left=0.06 * 3 / panels, right=0.99, bottom=0.13, top=0.84, wspace=0.25)
    axes = fig.subplots(1, panels, sharex=True)
    colors = _colors(data)
    marker = {"marker": "o", "markersize": 3.5, "linewidth": 1.2}
    for s in data["series"]:
        c, band = colors[s["label"]], len(s["seeds"]) > 1
        _band_line(axes[0], s["test_loss"], c, f"{s['label']} test", band, **marker)
        _band_line(
            axes[0], s["train"], c, f"{s['label']} train", False, linestyle="--", linewidth=1.0
        )
        if classification:
            _band_line(axes[1], s["test_accuracy"], c, s["label"], band, **marker)
        _band_line(axes[-1], s["gap"], c, s["label"], band, **marker)
    axes[0].set_title("Loss at each evaluation")
    axes[0].set_ylabel("loss")
    if classification:
        axes[1].set_title("Test accuracy")
        axes[1].set_ylabel("accuracy")
    axes[-1].set_title("Train-test gap (test minus train loss)")
    axes[-1].axhline(0.0, color="0.5", linewidth=0.8)
    spe = data.get("steps_per_epoch")
    for ax in axes:
        ax.set_xlabel(f"step ({spe} per epoch)" if spe else "step")
        if not ax.get_legend_handles_labels()[0]:
            empty(ax)
    if any(s["test_loss"]["steps"] for s in data["series"]):
        axes[0].legend(fontsize=7, loc="best")
        axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{data.get('title', 'Evaluations')}; train = {data['train_is']}")
    return fig


def fit(data: dict[str, Any]) -> Figure:
    """Train and test points with each variant's prediction curve at one epoch."""
    fig = new_figure(8, 4.8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.93)
    ax = fig.add_subplot()
    colors = _colors(data)
    points = data["points"]
    if "train_points" in points:
        p = points["train_points"]
        ax.scatter(p["x"], p["y"], s=16, color="0.15", label="train points", zorder=3)
    if "test_points" in points:
        p = points["test_points"]
        ax.scatter(p["x"], p["y"], s=22, color="0.55", marker="x", label="test points", zorder=3)
    for c in data["curves"]:
        order = np.argsort(c["x"])
        x, y = _array(c["x"])[order], _array(c["y"])[order]
        ax.plot(x, y, color=colors[c["label"]], linewidth=1.8, label=c["label"])
    if not data["curves"]:
        empty(ax, "no evaluation yet")
    losses = ", ".join(f"{c['label']} {fmt_loss(c['test_loss'])}" for c in data["curves"])
    epoch = data.get("epoch")
    title = f"Epoch {epoch}: test loss {losses}" if epoch is not None else "Fit"
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=8, loc="upper left")
    return fig
