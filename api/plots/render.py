"""Plot data to bytes: PNG, SVG, and the animated GIF of the activations."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from api.plots import draw_layers, draw_training

DRAWERS: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "loss": draw_training.loss,
    "eval": draw_training.evaluation,
    "fit": draw_training.fit,
    "activations": draw_layers.activations,
    "distributions": draw_layers.distributions,
}


def to_bytes(fig: Figure, fmt: str) -> bytes:
    """Encode a figure; SVGs drop their date so a re-render gives the same bytes."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else None
    fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def render(name: str, data: dict[str, Any], fmt: str) -> bytes:
    """Plot `name` as png or svg, or (activations only) as an animated gif."""
    if fmt == "gif":
        return draw_layers.animation(data)
    return to_bytes(DRAWERS[name](data), fmt)
