"""Pure shaping of stored results into plot data, and the checks of plot parameters.

No database here: data.py queries, these functions validate and shape, so both the pictures and
the `.json` twins come from the same dicts, and tests can feed them synthetic rows.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Sequence
from typing import Any

from api.plots.params import PlotParamError
from shared.findings import FINAL_STEPS

# Re-exported: the shaping functions take them, and tests build them.
from shared.plot_queries import Capture as Capture
from shared.plot_queries import RunRef as RunRef

# The bands drawn by the distributions plot, outermost first (stats["quantiles"] keys).
QUANTILES = ("0", "5", "25", "50", "75", "95", "100")
# Longer series are averaged in blocks: a 2000-point line already fills any screen.
MAX_POINTS = 2000

Series = tuple[list[int], list[float]]


def finite(value: Any) -> float | None:
    """The float, or None for missing, NaN and infinities (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def moving_average(values: Sequence[float], window: int | None) -> list[float]:
    """Trailing moving average (the first points average what there is)."""
    if not window or window <= 1:
        return list(values)
    out, total, queue = [], 0.0, []
    for value in values:
        queue.append(value)
        total += value
        if len(queue) > window:
            total -= queue.pop(0)
        out.append(total / len(queue))
    return out


def aggregate(per_seed: Sequence[Series]) -> dict[str, list[Any]]:
    """Across seeds, per step: mean, min and max of the finite values (seeds may stop early)."""
    by_step: dict[int, list[float]] = {}
    for steps, values in per_seed:
        for s, v in zip(steps, values, strict=True):
            if finite(v) is not None:
                by_step.setdefault(s, []).append(v)
    steps = sorted(by_step)
    mean = [math.fsum(by_step[s]) / len(by_step[s]) for s in steps]
    return {
        "steps": steps,
        "mean": mean,
        "min": [min(by_step[s]) for s in steps],
        "max": [max(by_step[s]) for s in steps],
    }


def thin(agg: dict[str, list[Any]], most: int = MAX_POINTS) -> dict[str, list[Any]]:
    """Average a long aggregate in blocks (min of mins, max of maxes) down to `most` points."""
    n = len(agg["steps"])
    if n <= most:
        return agg
    k = math.ceil(n / most)
    blocks = range(0, n, k)
    return {
        "steps": [agg["steps"][min(i + k, n) - 1] for i in blocks],
        "mean": [math.fsum(agg["mean"][i : i + k]) / len(agg["mean"][i : i + k]) for i in blocks],
        "min": [min(agg["min"][i : i + k]) for i in blocks],
        "max": [max(agg["max"][i : i + k]) for i in blocks],
    }


def value_at(series: Series | None, step: int) -> float | None:
    """The series' value at exactly `step`, if stored."""
    if not series:
        return None
    steps, values = series
    i = bisect.bisect_left(steps, step)
    return finite(values[i]) if i < len(steps) and steps[i] == step else None


def density(edges: Sequence[float], counts: Sequence[int]) -> tuple[list[float], list[float]]:
    """Bin centres and counts normalised to a probability density (area 1)."""
    total = float(sum(counts))
    centres, heights = [], []
    for i, count in enumerate(counts):
        width = edges[i + 1] - edges[i]
        centres.append((edges[i] + edges[i + 1]) / 2)
        heights.append(count / (total * width) if total and width > 0 else 0.0)
    return centres, heights


def build_loss(
    runs: Sequence[RunRef], variants: Sequence[str], series: dict[uuid.UUID, Series], smooth: int
) -> dict[str, Any]:
    """Per variant: the train loss per step, mean and min..max across seeds."""
    out = []
    for variant in variants:
        mine = [r for r in runs if r.variant == variant]
        per_seed = [series.get(r.id, ([], [])) for r in mine]
        per_seed = [(s, moving_average(v, smooth)) for s, v in per_seed]
        agg = thin(aggregate(per_seed))
        out.append({"label": variant, "seeds": [r.seed for r in mine], **agg})
    return {"smooth": smooth, "series": out}


def build_activations(
    variants: Sequence[str],
    layers: dict[str, str],
    captured_steps: Sequence[int],
    steps: Sequence[int],
    captures: dict[str, dict[int, Capture]],
    losses: dict[str, Series],
    seed: int,
) -> dict[str, Any]:
    """One panel per step: each variant's layer as a density curve, and its loss at that step."""
    panels = []
    for step in steps:
        curves = []
        for variant in variants:
            capture = captures.get(variant, {}).get(step)
            if variant not in layers or capture is None:
                continue
            x, y = density(capture.edges, capture.counts)
            curves.append({"label": variant, "layer": layers[variant], "x": x, "density": y})
        loss = {v: value_at(losses.get(v), step) for v in variants if v in layers}
        panels.append({"step": step, "loss": loss, "curves": curves})
    return {
        "seed": seed,
        "layers": layers,
        "captured_steps": list(captured_steps),
        "steps": list(steps),
        "panels": panels,
    }


def build_distributions(
    variants: Sequence[str], layers: dict[str, str], captures: dict[str, list[Capture]], seed: int
) -> dict[str, Any]:
    """Per variant: quantile bands of the layer over steps, and the drift per step."""
    out = []
    for variant in variants:
        if variant not in layers:
            continue
        rows = captures.get(variant, [])
        quantiles = {
            q: [finite(c.stats.get("quantiles", {}).get(q)) for c in rows] for q in QUANTILES
        }
        out.append(
            {
                "label": variant,
                "layer": layers[variant],
                "steps": [c.step for c in rows],
                "quantiles": quantiles,
                "drift": [finite(c.stats.get("drift")) for c in rows],
            }
        )
    return {"seed": seed, "quantile_keys": list(QUANTILES), "series": out}


def steps_per_epoch(eval_steps: Sequence[int], eval_every: int, epochs: int) -> int | None:
    """Recovered from the first evaluation, which lands on epoch min(eval_every, epochs)."""
    if not eval_steps:
        return None
    return max(1, eval_steps[0] // max(1, min(eval_every, epochs)))


def _gap_train(task: str, run_series: dict[str, Series], step: int) -> float | None:
    """The train loss a test loss is compared with at an evaluation step; as in the findings."""
    if task == "regression":
        return value_at(run_series.get("train_loss_eval"), step)
    steps, values = run_series.get("train_loss", ([], []))
    window = [v for s, v in zip(steps, values, strict=True) if s <= step and finite(v)]
    window = window[-FINAL_STEPS:]
    return math.fsum(window) / len(window) if window else None


def build_eval(
    runs: Sequence[RunRef],
    variants: Sequence[str],
    series: dict[uuid.UUID, dict[str, Series]],
    task: str,
    spe: int | None,
) -> dict[str, Any]:
    """Per variant: test loss, test accuracy, the train loss it is compared with, and the gap."""
    out = []
    for variant in variants:
        keyed: dict[str, list[Series]] = {"test_loss": [], "test_accuracy": [], "train": []}
        keyed["gap"] = []
        mine_runs = [r for r in runs if r.variant == variant]
        for run in mine_runs:
            mine = series.get(run.id, {})
            test_steps, test_values = mine.get("test_loss", ([], []))
            train = [_gap_train(task, mine, s) for s in test_steps]
            gap = [
                t - tr if finite(t) is not None and tr is not None else None
                for t, tr in zip(test_values, train, strict=True)
            ]
            keyed["test_loss"].append((test_steps, test_values))
            keyed["test_accuracy"].append(mine.get("test_accuracy", ([], [])))
            keyed["train"].append((test_steps, [math.nan if v is None else v for v in train]))
            keyed["gap"].append((test_steps, [math.nan if v is None else v for v in gap]))
        seeds = [r.seed for r in mine_runs]
        out.append(
            {"label": variant, "seeds": seeds, **{k: aggregate(v) for k, v in keyed.items()}}
        )
    return {"task": task, "steps_per_epoch": spe, "train_is": train_is(task), "series": out}


def train_is(task: str) -> str:
    """What the gap's train loss is, for the plot's title."""
    if task == "regression":
        return "train_loss_eval"
    return f"mean train_loss of the {FINAL_STEPS} steps up to the evaluation"


def build_fit(
    variants: Sequence[str],
    fits: dict[str, dict[int, tuple[int, list[float], list[float]]]],
    points: dict[str, tuple[list[float], list[float]]],
    test_loss: dict[str, Series],
    epoch: int | None,
    seed: int,
) -> dict[str, Any]:
    """Train and test points, and each variant's prediction curve at one evaluated epoch."""
    epochs = sorted({e for per in fits.values() for e in per})
    if epoch is None and epochs:
        epoch = epochs[-1]
    elif epoch is not None and epoch not in epochs:
        raise PlotParamError("epoch", f"epoch {epoch} was never evaluated", epochs)
    curves = []
    for variant in variants:
        if epoch is None or epoch not in fits.get(variant, {}):
            continue
        step, x, y = fits[variant][epoch]
        loss = value_at(test_loss.get(variant), step)
        curves.append({"label": variant, "step": step, "x": x, "y": y, "test_loss": loss})
    return {
        "seed": seed,
        "epoch": epoch,
        "epochs": epochs,
        "points": {k: {"x": x, "y": y} for k, (x, y) in points.items()},
        "curves": curves,
    }


def clean(value: Any) -> Any:
    """A copy with every non-finite float replaced by None, ready for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
