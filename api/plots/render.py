"""Plot data to bytes by plot name (the catalog's draw functions): PNG, SVG, GIF."""

from __future__ import annotations

from typing import Any

from api.plots.catalog import PLOTS


def render(name: str, data: dict[str, Any], fmt: str) -> bytes:
    """Plot `name` as png or svg, or (activations only) as an animated gif."""
    return PLOTS[name].render(data, fmt)
