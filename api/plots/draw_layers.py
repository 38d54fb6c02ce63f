"""Figures of what the layers output: densities per step, quantile bands, and the animation."""

from __future__ import annotations

import io
import math
from typing import Any, cast

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from api.plots.style import empty, fmt_loss, new_figure, palette

FRAME_MS = 300


def _colors(data: dict[str, Any]) -> dict[str, str]:
    return palette(data.get("variants") or list(data.get("layers", {})))


def _layer_names(data: dict[str, Any]) -> str:
    layers = data.get("layers", {})
    if len(set(layers.values())) == 1:
        return next(iter(layers.values()))
    return ", ".join(f"{v}: {layer}" for v, layer in layers.items())


def _panel_title(panel: dict[str, Any], long: bool) -> str:
    if long:
        losses = ", ".join(f"{v} loss {fmt_loss(x)}" for v, x in panel["loss"].items())
        return f"Iteration {panel['step']}: {losses}"
    parts = [f"{v} {fmt_loss(x)}" for v, x in panel["loss"].items()]
    pairs = ["  ".join(parts[i : i + 2]) for i in range(0, len(parts), 2)]
    return "\n".join([f"step {panel['step']}", *pairs])


def _x_range(data: dict[str, Any]) -> tuple[float, float] | None:
    xs = [x for p in data["panels"] for c in p["curves"] for x in c["x"] if x is not None]
    return (min(xs), max(xs)) if xs else None


def activations(data: dict[str, Any]) -> Figure:
    """Overlaid density curves of each variant's layer: one step, or a grid over steps."""
    panels = data["panels"]
    colors = _colors(data)
    n = max(1, len(panels))
    cols = 1 if n == 1 else min(4, n)
    rows = math.ceil(n / cols)
    if n == 1:
        fig = new_figure(8, 4.5)
        fig.subplots_adjust(left=0.08, right=0.97, bottom=0.12, top=0.86)
    else:
        # Margins in inches: a suptitle, a title of 1 + variants/2 lines above each panel.
        title = 0.17 * (1 + math.ceil(len(data.get("layers", {})) / 2)) + 0.08
        panel, top, bottom = 1.9, 0.35 + title, 0.5
        height = top + rows * panel + (rows - 1) * (title + 0.12) + bottom
        fig = new_figure(3.2 * cols, height)
        fig.subplots_adjust(
            left=0.06,
            right=0.98,
            bottom=bottom / height,
            top=1 - top / height,
            wspace=0.12,
            hspace=(title + 0.12) / panel,
        )
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        for c in panel["curves"]:
            x, y = np.asarray(c["x"], dtype=float), np.asarray(c["density"], dtype=float)
            ax.plot(x, y, color=colors[c["label"]], linewidth=1.3, label=c["label"])
            ax.fill_between(x, y, color=colors[c["label"]], alpha=0.15, linewidth=0)
        ax.set_title(_panel_title(panel, n == 1), fontsize=10 if n == 1 else 8)
        if not panel["curves"]:
            empty(ax, "no capture")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if not panels:
        empty(axes[0], "no activations captured yet")
    _same_scale(data, axes[: max(1, len(panels))], cols)
    if panels and panels[0]["curves"]:
        axes[0].legend(fontsize=8 if n == 1 else 7, loc="upper right")
    fig.suptitle(f"Distribution of {_layer_names(data)} (eval mode, seed {data['seed']})")
    return fig


def _same_scale(data: dict[str, Any], axes: np.ndarray, cols: int) -> None:
    """One scale for every panel, which is what makes the drift between steps visible.

    Ticks only on the outer panels: tick objects are most of the cost of drawing a grid.
    """
    xr = _x_range(data)
    heights = [y for p in data["panels"] for c in p["curves"] for y in c["density"] if y]
    top = max(heights) * 1.05 if heights else 1.0
    last_row_start = {i % cols: i for i in range(len(axes))}
    for i, ax in enumerate(axes):
        if xr is not None and xr[0] < xr[1]:
            ax.set_xlim(*xr)
        ax.set_ylim(0, top)
        ax.grid(False)
        if i == last_row_start[i % cols]:
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_xlabel("value")
        else:
            ax.set_xticks([])
        if i % cols == 0:
            ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.set_ylabel("density")
        else:
            ax.set_yticks([])


def distributions(data: dict[str, Any]) -> Figure:
    """Per variant, quantile bands over steps (TensorBoard style); the drift per step beneath."""
    series = data["series"]
    colors = _colors(data)
    n = max(1, len(series))
    fig = new_figure(max(8.0, 4.0 * n), 6.0)
    grid = fig.add_gridspec(
        2,
        n,
        height_ratios=[3, 1.4],
        left=0.08,
        right=0.98,
        bottom=0.08,
        top=0.9,
        hspace=0.35,
        wspace=0.12,
    )
    top = [fig.add_subplot(grid[0, i]) for i in range(n)]
    for ax in top[1:]:
        ax.sharey(top[0])
    drift_ax = fig.add_subplot(grid[1, :])
    bands = [("0", "100", 0.12), ("5", "95", 0.22), ("25", "75", 0.38)]
    for ax, s in zip(top, series, strict=False):
        c, steps, q = colors[s["label"]], np.asarray(s["steps"], dtype=float), s["quantiles"]
        for low, high, alpha in bands:
            lo, hi = np.asarray(q[low], dtype=float), np.asarray(q[high], dtype=float)
            ax.fill_between(
                steps, lo, hi, color=c, alpha=alpha, linewidth=0, label=f"{low}-{high}%"
            )
        ax.plot(steps, np.asarray(q["50"], dtype=float), color=c, linewidth=1.3, label="median")
        ax.set_title(f"{s['label']}: {s['layer']}")
        ax.set_xlabel("step")
        drift = np.asarray(s["drift"], dtype=float)
        drift_ax.plot(
            steps, drift, color=c, marker="o", markersize=2.5, linewidth=1.1, label=s["label"]
        )
        if not s["steps"]:
            empty(ax)
    if not series:
        empty(top[0], "no activations captured yet")
    top[0].set_ylabel("value")
    if series and series[0]["steps"]:
        top[0].legend(fontsize=7, loc="upper left")
    drift_ax.set_title("Drift: Wasserstein-1 distance to the previous capture")
    drift_ax.set_xlabel("step")
    drift_ax.set_ylabel("drift")
    if drift_ax.get_legend_handles_labels()[0]:
        drift_ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Layer distributions over training (seed {data['seed']})")
    return fig


def animation(data: dict[str, Any]) -> bytes:
    """The activations over captured steps as an animated GIF, on fixed axes."""
    colors = _colors(data)
    fig = new_figure(6.4, 3.8)
    ax = fig.add_subplot()
    fig.suptitle(f"Distribution of {_layer_names(data)} (eval mode, seed {data['seed']})")
    labels = list(data.get("layers", {}))
    lines = {v: ax.plot([], [], color=colors[v], linewidth=1.4, label=v)[0] for v in labels}
    xr = _x_range(data)
    heights = [y for p in data["panels"] for c in p["curves"] for y in c["density"]]
    if xr is not None and xr[0] < xr[1]:
        ax.set_xlim(*xr)
    ax.set_ylim(0, (max(heights) if heights else 1.0) * 1.05 or 1.0)
    ax.set_xlabel("value")
    ax.set_ylabel("density")
    if labels:
        ax.legend(fontsize=8, loc="upper right")
    frames: list[Image.Image] = []
    # The figure is drawn once per step with only the lines and title changed, as
    # matplotlib.animation does, and the frames are handed to Pillow like PillowWriter does.
    for panel in data["panels"] or [{"step": "-", "loss": {}, "curves": []}]:
        drawn = {c["label"]: c for c in panel["curves"]}
        for v, line in lines.items():
            c = drawn.get(v)
            line.set_data((c["x"], c["density"]) if c else ([], []))
        ax.set_title(_panel_title(panel, True), fontsize=9)
        canvas = cast(FigureCanvasAgg, fig.canvas)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        frames.append(Image.fromarray(rgba[..., :3]).quantize(colors=64, dither=Image.Dither.NONE))
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0
    )
    return buffer.getvalue()
