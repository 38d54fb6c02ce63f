"""A sweep's sensitivity plot: the final metric against an axis, a line per variant.

One axis (or `axis=` named): the metric against that axis, a min..max band across seeds, each
value's best point over the other axes; diverged points marked along the bottom. Two axes: a
heatmap per variant. The data comes from the sweep's findings, so the two always agree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from api.plots.params import PlotParamError
from api.plots.style import empty, new_figure, palette
from shared.sweep_schemas import SweepFindings


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _log(values: list[Any]) -> bool:
    """Log scale where positive numbers span a decade or more."""
    return _numeric(values) and min(values) > 0 and max(values) / min(values) >= 10


def _order(values: list[Any]) -> list[Any]:
    unique = list({repr(v): v for v in values}.values())
    return sorted(unique) if _numeric(unique) else unique


def data(findings: SweepFindings, axis: str | None) -> dict[str, Any]:
    """The plot's data: lines against one axis, or heatmaps over two."""
    axes = findings.axes
    if axis is not None and axis not in axes:
        raise PlotParamError("axis", f"the sweep has no axis '{axis}'", axes)
    base = {"metric": findings.metric, "higher_is_better": findings.higher_is_better}
    if axis is None and len(axes) == 2:
        return {**base, **heatmaps(findings, axes[0], axes[1])}
    return {**base, **lines(findings, axis or axes[0])}


def lines(findings: SweepFindings, axis: str) -> dict[str, Any]:
    """Per variant and axis value: mean, min and max across seeds at the value's best point."""
    xs = _order([p.values[axis] for p in findings.points])
    sign = 1 if findings.higher_is_better else -1
    series = []
    for v in findings.variants:
        mean, low, high, diverged = [], [], [], []
        for x in xs:
            at = [p.variants[v] for p in findings.points if p.values[axis] == x and v in p.variants]
            scored = [a for a in at if a.final.mean is not None]
            top = max(scored, key=lambda a: sign * (a.final.mean or 0.0)) if scored else None
            mean.append(top.final.mean if top else None)
            low.append(top.final.min if top else None)
            high.append(top.final.max if top else None)
            if any(a.diverged_seeds for a in at):
                diverged.append(x)
        series.append({"label": v, "mean": mean, "min": low, "max": high, "diverged_at": diverged})
    numeric = _numeric(xs)
    return {
        "kind": "lines",
        "axis": axis,
        "x": xs if numeric else [str(x) for x in xs],
        "numeric": numeric,
        "log_x": _log(xs),
        "best_over_other_axes": len(findings.axes) > 1,
        "series": series,
    }


def heatmaps(findings: SweepFindings, x_axis: str, y_axis: str) -> dict[str, Any]:
    """Per variant: the mean metric at each (x, y), and whether a seed diverged there."""
    xs = _order([p.values[x_axis] for p in findings.points])
    ys = _order([p.values[y_axis] for p in findings.points])
    maps = []
    for v in findings.variants:
        mean: list[list[float | None]] = [[None] * len(xs) for _ in ys]
        diverged = [[False] * len(xs) for _ in ys]
        for p in findings.points:
            if v not in p.variants:
                continue
            i, j = ys.index(p.values[y_axis]), xs.index(p.values[x_axis])
            mean[i][j] = p.variants[v].final.mean
            diverged[i][j] = bool(p.variants[v].diverged_seeds)
        maps.append({"label": v, "mean": mean, "diverged": diverged})
    return {
        "kind": "heatmap",
        "x_axis": x_axis,
        "y_axis": y_axis,
        "x": [x if _numeric(xs) else str(x) for x in xs],
        "y": [y if _numeric(ys) else str(y) for y in ys],
        "variants": maps,
    }


def _array(values: list[Any]) -> np.ndarray:
    return np.asarray([math.nan if v is None else v for v in values], dtype=float)


def draw(found: dict[str, Any]) -> Figure:
    """The PNG/SVG of data()."""
    return draw_heatmaps(found) if found["kind"] == "heatmap" else draw_lines(found)


def draw_lines(found: dict[str, Any]) -> Figure:
    fig = new_figure(7, 4.2)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.13, top=0.9)
    ax = fig.add_subplot()
    colors = palette([s["label"] for s in found["series"]])
    positions = found["x"] if found["numeric"] else list(range(len(found["x"])))
    x = _array(positions)
    for s in found["series"]:
        c = colors[s["label"]]
        ax.fill_between(x, _array(s["min"]), _array(s["max"]), color=c, alpha=0.2, linewidth=0)
        ax.plot(x, _array(s["mean"]), color=c, marker="o", markersize=4, label=s["label"])
        bad = [
            positions[found["x"].index(d if found["numeric"] else str(d))] for d in s["diverged_at"]
        ]
        if bad:
            ax.plot(
                bad, [0.03] * len(bad), linestyle="none", marker="x", markersize=8, color=c,
                transform=ax.get_xaxis_transform(), label=f"{s['label']} diverged (a seed)",
            )  # fmt: skip
    if found["log_x"]:
        ax.set_xscale("log")
        # Explicit limits: with nothing drawn yet, log axes have no positive range to show.
        ax.set_xlim(min(positions) / 1.5, max(positions) * 1.5)
    if not found["numeric"]:
        ax.set_xticks(positions, found["x"])
    if not any(v is not None for s in found["series"] for v in s["mean"]):
        empty(ax, "no finished point yet")
    ax.set_xlabel(found["axis"])
    ax.set_ylabel(found["metric"])
    note = " (each value's best point over the other axes)" if found["best_over_other_axes"] else ""
    ax.set_title(f"{found['metric']} against {found['axis']}: mean, min..max across seeds{note}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return fig


def draw_heatmaps(found: dict[str, Any]) -> Figure:
    maps = found["variants"]
    fig = new_figure(4.2 * max(1, len(maps)), 3.8)
    fig.subplots_adjust(left=0.12, right=0.95, bottom=0.15, top=0.85, wspace=0.35)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(maps)), squeeze=False)[0])
    cmap = "viridis" if found["higher_is_better"] else "viridis_r"
    for ax, m in zip(axes, maps, strict=False):
        grid = np.array([_array(row) for row in m["mean"]])
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap)
        fig.colorbar(image, ax=ax, shrink=0.8)
        for i, row in enumerate(m["diverged"]):
            for j, bad in enumerate(row):
                text = "x" if bad else ("" if math.isnan(grid[i, j]) else f"{grid[i, j]:.3g}")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(range(len(found["x"])), [str(v) for v in found["x"]])
        ax.set_yticks(range(len(found["y"])), [str(v) for v in found["y"]])
        ax.set_xlabel(found["x_axis"])
        ax.set_ylabel(found["y_axis"])
        ax.set_title(m["label"])
        ax.grid(False)
    fig.suptitle(f"{found['metric']} (mean across seeds; x: a seed diverged)")
    return fig
