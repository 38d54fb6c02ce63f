"""Data of the optimisation-probe plots: the landscape along the gradient, and ICS per layer.

Both read the metric series the probes stored (worker/training/landscape.py) and average them
across seeds, step by step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from api.plots import build as b
from api.plots.data import Source
from shared import results
from shared.datasets import CATALOG
from shared.shapes import plan_model

LANDSCAPE_KEYS = {
    "loss_min": "landscape_loss_min",
    "loss_max": "landscape_loss_max",
    "grad_change_min": "landscape_grad_change_min",
    "grad_change_max": "landscape_grad_change_max",
    "beta": "landscape_beta",
}


def seed_means(per_seed: Sequence[b.Series]) -> dict[int, float]:
    """Step -> the mean across seeds of the finite values stored at that step."""
    agg = b.aggregate(per_seed)
    return dict(zip(agg["steps"], agg["mean"], strict=True))


def build_landscape(
    variants: Sequence[str], series: dict[str, dict[str, list[b.Series]]]
) -> list[dict[str, Any]]:
    """Per variant: steps, and each landscape series as its mean across seeds at those steps."""
    out = []
    for variant in variants:
        by_key = {
            name: seed_means(series.get(variant, {}).get(key, []))
            for name, key in LANDSCAPE_KEYS.items()
        }
        steps = sorted(by_key["loss_min"])
        entry: dict[str, Any] = {"label": variant, "steps": steps}
        for name, means in by_key.items():
            entry[name] = [means.get(s, math.nan) for s in steps]
        out.append(entry)
    return out


def build_ics(
    variants: Sequence[str],
    layers: dict[str, list[str]],
    series: dict[str, dict[str, list[b.Series]]],
) -> list[dict[str, Any]]:
    """Per variant and layer: steps, l2 distance and cosine, each a mean across seeds."""
    out = []
    for variant in variants:
        for layer in layers.get(variant, []):
            l2 = seed_means(series.get(variant, {}).get(f"ics_l2:{layer}", []))
            cos = seed_means(series.get(variant, {}).get(f"ics_cos:{layer}", []))
            steps = sorted(l2)
            out.append(
                {
                    "label": variant,
                    "layer": layer,
                    "steps": steps,
                    "l2": [l2[s] for s in steps],
                    "cosine": [cos.get(s, math.nan) for s in steps],
                }
            )
    return out


def _read(src: Source, session: Session, keys: list[str]) -> dict[str, dict[str, list[b.Series]]]:
    """Variant -> key -> one series per seed."""
    stored = results.read_series(session, [r.id for r in src.runs], keys)
    out: dict[str, dict[str, list[b.Series]]] = {}
    for run in src.runs:
        for key, pair in stored.get(run.id, {}).items():
            out.setdefault(run.variant, {}).setdefault(key, []).append(pair)
    return out


def ics_layers(src: Source) -> dict[str, list[str]]:
    """Variant -> its weight layers that have a layer below (those ICS is measured on)."""
    info = CATALOG[src.spec.dataset.name]
    out = {}
    for v in src.spec.variants:
        plan = plan_model(v.model, info.input_shape, info.num_outputs)
        out[v.name] = [p.name for p in plan if p.kind in ("linear", "conv2d")][1:]
    return out


def landscape(session: Session, src: Source) -> dict[str, Any]:
    """Loss and gradient-change bands over the step sizes, and beta, per variant."""
    probe = src.spec.probes.landscape
    series = _read(src, session, list(LANDSCAPE_KEYS.values()))
    lr = src.spec.training.optimizer.lr
    return {
        "seeds": src.seeds,
        "lr": lr,
        "multipliers": list(probe.multipliers) if probe else [],
        "series": build_landscape(src.variants, series),
    }


def ics(session: Session, src: Source) -> dict[str, Any]:
    """ICS (Santurkar et al. Definition 2.1) per weight layer: l2 distance and cosine."""
    layers = ics_layers(src)
    keys = [
        f"ics_{kind}:{layer}"
        for names in layers.values()
        for layer in names
        for kind in ("l2", "cos")
    ]
    return {
        "seeds": src.seeds,
        "layers": layers,
        "series": build_ics(src.variants, layers, _read(src, session, sorted(set(keys)))),
    }
