"""Server-rendered plots of an experiment's stored results (matplotlib, Agg, no pyplot).

Each plot is one declaration in catalog.py (see registry.py for how to add one).
"""

from __future__ import annotations

MEDIA_TYPES = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "gif": "image/gif",
    "json": "application/json",
}
