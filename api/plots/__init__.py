"""Server-rendered plots of an experiment's stored results (matplotlib, Agg, no pyplot)."""

from __future__ import annotations

# Plot name -> the formats it is served in.
FORMATS: dict[str, tuple[str, ...]] = {
    "loss": ("png", "svg", "json"),
    "activations": ("png", "svg", "json", "gif"),
    "distributions": ("png", "svg", "json"),
    "eval": ("png", "svg", "json"),
    "fit": ("png", "svg", "json"),
}

MEDIA_TYPES = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "gif": "image/gif",
    "json": "application/json",
}
