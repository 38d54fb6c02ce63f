"""What the numbers say: per-variant measures with their spread across seeds, and every pair.

Pure Python over stored series, so the API (live) and the worker (once, at the end) agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

# The window the tutorial's BN claim is checked on, and the tail that "final" averages over.
EARLY_WINDOW = (40, 50)
FINAL_STEPS = 10
SMOOTHING = 10
# Test accuracies whose first step is reported: the highest three every run reached.
ACCURACY_LADDER = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99)
ACCURACY_LEVELS = 3


@dataclass
class RunSeries:
    """One run's stored numbers, as the findings need them."""

    variant: str
    seed: int
    series: dict[str, tuple[list[int], list[float]]]
    drift: dict[str, list[float]] = field(default_factory=dict)


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, standard deviation, min, max and count of per-seed values."""
    clean = [v for v in values if v is not None and math.isfinite(v)]
    if not clean:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": statistics.fmean(clean),
        "std": statistics.stdev(clean) if len(clean) > 1 else 0.0,
        "min": min(clean),
        "max": max(clean),
        "n": len(clean),
    }


def mean_between(steps: list[int], values: list[float], low: int, high: int) -> float | None:
    """Mean of the values whose step lies in [low, high]."""
    window = [v for s, v in zip(steps, values, strict=True) if low <= s <= high]
    return statistics.fmean(window) if window else None


def steps_to_reach(steps: list[int], values: list[float], threshold: float) -> int | None:
    """First step at which the moving average of the loss is at or below `threshold`."""
    for i in range(len(values)):
        window = values[max(0, i - SMOOTHING + 1) : i + 1]
        if statistics.fmean(window) <= threshold:
            return steps[i]
    return None


def last(series: dict[str, tuple[list[int], list[float]]], key: str) -> float | None:
    """The last stored value of a key, if any."""
    values = series.get(key, ([], []))[1]
    return values[-1] if values else None


def per_run_measures(run: RunSeries, threshold: float | None) -> dict[str, float | None]:
    """The measures of one run."""
    steps, losses = run.series.get("train_loss", ([], []))
    final_train = statistics.fmean(losses[-FINAL_STEPS:]) if losses else None
    test_loss = last(run.series, "test_loss")
    train_eval = last(run.series, "train_loss_eval")
    train_for_gap = train_eval if train_eval is not None else final_train
    measures: dict[str, float | None] = {
        "early_train_loss": mean_between(steps, losses, *EARLY_WINDOW),
        "final_train_loss": final_train,
        "steps_to_threshold": (
            steps_to_reach(steps, losses, threshold) if threshold is not None else None
        ),
        "final_test_loss": test_loss,
        "final_test_accuracy": last(run.series, "test_accuracy"),
        "train_test_gap": (
            test_loss - train_for_gap
            if test_loss is not None and train_for_gap is not None
            else None
        ),
    }
    for layer, drifts in run.drift.items():
        measures[f"drift:{layer}"] = statistics.fmean(drifts) if drifts else None
    measures.update(probe_measures(run.series))
    return measures


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _values(series: dict[str, tuple[list[int], list[float]]], key: str) -> list[float]:
    return series.get(key, ([], []))[1]


def probe_measures(series: dict[str, tuple[list[int], list[float]]]) -> dict[str, float | None]:
    """The optimisation probes' measures (worker/training/landscape.py), where they were taken.

    Means over the probed steps: the loss range along the gradient, the largest gradient change,
    the effective beta-smoothness, ICS (l2 and cosine, over layers too), the whole gradient's
    norm; and how far each percentile of the last activation's unit input moved (max - min).
    """
    out: dict[str, float | None] = {}
    low, high = _values(series, "landscape_loss_min"), _values(series, "landscape_loss_max")
    if low and len(low) == len(high):
        out["landscape_loss_range"] = _mean([b - a for a, b in zip(low, high, strict=True)])
        out["landscape_grad_change"] = _mean(_values(series, "landscape_grad_change_max"))
        out["landscape_beta"] = _mean(_values(series, "landscape_beta"))
    for prefix, name in (("ics_l2:", "ics_l2"), ("ics_cos:", "ics_cosine")):
        found = [v for key in series if key.startswith(prefix) for v in _values(series, key)]
        if found:
            out[name] = _mean(found)
    squares: dict[int, float] = {}
    for key, (steps, values) in series.items():
        if key.startswith("grad_norm:"):
            for step, value in zip(steps, values, strict=True):
                squares[step] = squares.get(step, 0.0) + value * value
    if squares:
        out["grad_norm"] = _mean([math.sqrt(v) for v in squares.values()])
    for p in (15, 50, 85):
        values = _values(series, f"unit_input_p{p}")
        if values:
            out[f"unit_input_p{p}_moved"] = max(values) - min(values)
    return out


def accuracy_levels(runs: Sequence[RunSeries]) -> list[float]:
    """The highest ACCURACY_LEVELS of the ladder that every run with test accuracies reached."""
    best = [
        max(_values(r.series, "test_accuracy")) for r in runs if _values(r.series, "test_accuracy")
    ]
    if not best:
        return []
    return [level for level in ACCURACY_LADDER if level <= min(best)][-ACCURACY_LEVELS:]


def steps_to_accuracy(run: RunSeries, levels: Sequence[float]) -> dict[str, float | None]:
    """`steps_to_test_accuracy:<level>`: the first evaluation step at or above each level."""
    steps, values = run.series.get("test_accuracy", ([], []))
    out: dict[str, float | None] = {}
    for level in levels:
        reached = [s for s, v in zip(steps, values, strict=True) if v >= level]
        out[f"steps_to_test_accuracy:{level:g}"] = float(reached[0]) if reached else None
    return out


def loss_threshold(runs: Sequence[RunSeries]) -> float | None:
    """The highest final loss of any run: a level every run reached, so speeds compare."""
    finals = [
        statistics.fmean(r.series["train_loss"][1][-FINAL_STEPS:])
        for r in runs
        if r.series.get("train_loss", ([], []))[1]
    ]
    return max(finals) if finals else None


def compute_findings(runs: Sequence[RunSeries]) -> dict[str, Any]:
    """Per-variant measures with spread across seeds, and per-pair differences seed by seed."""
    threshold = loss_threshold(runs)
    levels = accuracy_levels(runs)
    by_variant: dict[str, dict[int, dict[str, float | None]]] = {}
    for run in runs:
        measures = {**per_run_measures(run, threshold), **steps_to_accuracy(run, levels)}
        by_variant.setdefault(run.variant, {})[run.seed] = measures
    names = sorted({m for measures in by_variant.values() for s in measures.values() for m in s})
    variants = {
        variant: {m: spread([s.get(m) for s in seeds.values()]) for m in names}
        for variant, seeds in by_variant.items()
    }
    pairs = [
        compare(a, b, by_variant[a], by_variant[b], names)
        for a, b in combinations(list(by_variant), 2)
    ]
    return {
        "loss_threshold": threshold,
        "accuracy_levels": levels,
        "early_window": list(EARLY_WINDOW),
        "final_steps": FINAL_STEPS,
        "variants": variants,
        "pairs": pairs,
    }


def compare(
    a: str,
    b: str,
    seeds_a: dict[int, dict[str, float | None]],
    seeds_b: dict[int, dict[str, float | None]],
    names: list[str],
) -> dict[str, Any]:
    """Differences b - a per measure over the seeds both ran, and how often b is lower."""
    common = sorted(set(seeds_a) & set(seeds_b))
    measures: dict[str, Any] = {}
    statements = []
    for name in names:
        diffs = [
            seeds_b[s][name] - seeds_a[s][name]  # type: ignore[operator]
            for s in common
            if seeds_a[s].get(name) is not None and seeds_b[s].get(name) is not None
        ]
        if not diffs:
            continue
        lower, higher = sum(d < 0 for d in diffs), sum(d > 0 for d in diffs)
        measures[name] = {
            "difference": spread(diffs),
            "b_lower_in": lower,
            "b_higher_in": higher,
            "seeds": len(diffs),
        }
        # A run cut short (cancelled, diverged) may lack a measure the others have.
        value_a = _mean_sd([seeds_a[s].get(name) for s in common])
        value_b = _mean_sd([seeds_b[s].get(name) for s in common])
        statements.append(
            f"{name}: {b} {value_b} vs {a} {value_a} "
            f"({b} lower in {lower}, higher in {higher} of {len(diffs)} seeds)"
        )
    return {"a": a, "b": b, "measures": measures, "statements": statements}


def _mean_sd(values: Sequence[float | None]) -> str:
    """The mean across seeds, with the standard deviation once there are several seeds."""
    found = spread(values)
    text = f"{found['mean']:.4g}"
    return text if found["n"] < 2 else f"{text} ± {found['std']:.2g}"
