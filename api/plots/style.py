"""The house look of every plot, and the helpers the drawing modules share.

pyplot keeps global state (the current figure) and is not thread-safe; FastAPI renders in its
threadpool, so every figure here is a private `Figure` on its own Agg canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

matplotlib.rcParams.update(
    {
        # Text stays text (smaller files, selectable); a fixed salt makes ids, so ETags, stable.
        "svg.fonttype": "none",
        "svg.hashsalt": "bnlab",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
    }
)

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas.

    No layout engine: constrained layout measures every tick label and took most of a render;
    each drawing sets its margins itself instead.
    """
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def palette(labels: Sequence[str]) -> dict[str, str]:
    """A stable colour per label: the n-th label always gets the n-th colour of the cycle."""
    return {label: f"C{i % 10}" for i, label in enumerate(labels)}


def empty(ax: Axes, message: str = "no data yet") -> None:
    """Say so in the middle of an axis instead of drawing a blank box."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def fmt_loss(value: Any) -> str:
    """A loss for a title: three decimals, or a dash when unknown."""
    return "-" if value is None else f"{value:.3f}"
