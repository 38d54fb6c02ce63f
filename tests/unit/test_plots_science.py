"""The landscape and ICS plots' data (means across seeds) and drawings, from synthetic series."""

from __future__ import annotations

import math

from api.plots import draw_science
from api.plots.registry import to_bytes
from api.plots.science import build_ics, build_landscape


def test_landscape_bands_are_means_across_seeds_and_draw() -> None:
    series = {
        "bn": {
            "landscape_loss_min": [([10, 20], [1.0, 0.5]), ([10, 20], [3.0, 0.7])],
            "landscape_loss_max": [([10, 20], [2.0, 0.9]), ([10, 20], [4.0, 1.1])],
            "landscape_beta": [([10, 20], [5.0, 6.0]), ([10], [7.0])],
        }
    }
    out = build_landscape(["plain", "bn"], series)
    plain, bn = out
    assert plain == {
        "label": "plain",
        "steps": [],
        **{k: [] for k in bn if k not in ("label", "steps")},
    }
    assert bn["steps"] == [10, 20]
    assert bn["loss_min"] == [2.0, 0.6] and bn["loss_max"] == [3.0, 1.0]
    assert bn["beta"] == [6.0, 6.0]  # seed 1 has no step 20: the mean of what there is
    assert all(math.isnan(v) for v in bn["grad_change_max"])
    data = {
        "variants": ["plain", "bn"],
        "seeds": [0, 1],
        "lr": 0.1,
        "multipliers": [1, 2],
        "series": out,
    }
    assert to_bytes(draw_science.landscape(data), "png").startswith(b"\x89PNG")
    assert b"Landscape along the gradient" in to_bytes(draw_science.landscape(data), "svg")


def test_ics_per_variant_and_layer_and_draw() -> None:
    series = {
        "bn": {
            "ics_l2:output.linear": [([5], [0.2]), ([5], [0.4])],
            "ics_cos:output.linear": [([5], [0.9])],
        }
    }
    out = build_ics(["bn"], {"bn": ["output.linear"]}, series)
    assert out == [
        {
            "label": "bn",
            "layer": "output.linear",
            "steps": [5],
            "l2": [(0.2 + 0.4) / 2],
            "cosine": [0.9],
        }
    ]
    data = {"variants": ["bn"], "seeds": [0, 1], "series": out}
    assert b"Internal covariate shift" in to_bytes(draw_science.ics(data), "svg")
    assert to_bytes(draw_science.ics({"variants": [], "series": []}), "png").startswith(b"\x89PNG")
