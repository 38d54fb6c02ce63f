"""What a sweep says across its points: each variant's final metric and early loss per point,
divergences, the best value of each axis, where one variant beats another in every seed.

compute() is pure over plain records; sweep_findings() reads them from the database (the run
summaries the worker stored, and the first 50 steps of each run's training loss).
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.datasets import CATALOG
from shared.findings import EARLY_WINDOW, spread
from shared.models import Metric, Sweep
from shared.sweep_schemas import SweepFindings
from shared.sweep_statements import statements

# The first steps a run's loss starts from; it "trains" if its final loss falls below
# TRAINS_RATIO of that, in every seed, without diverging.
FIRST_STEPS = 10
TRAINS_RATIO = 0.9
# A classifier must also beat chance clearly: a quarter of the way from chance to perfect.
ABOVE_CHANCE = 0.25
METRICS = ("test_accuracy", "test_loss", "final_train_loss", "early_train_loss")
TRAINS_MEANS = (
    f"no seed diverged and in every seed the final train loss (mean of the last steps) is below "
    f"{TRAINS_RATIO:g} x the mean of the first {FIRST_STEPS} steps, and for classification the "
    f"test accuracy is at least chance + {ABOVE_CHANCE:g} x (1 - chance)"
)


@dataclass
class RunRecord:
    """One run of one point, as the sweep's findings need it."""

    variant: str
    seed: int
    status: str
    diverged_step: int | None
    summary: dict[str, Any]
    first_loss: float | None = None
    early_loss: float | None = None


@dataclass
class PointRecord:
    """One point: its axis values, its experiment and its runs."""

    index: int
    values: dict[str, Any]
    experiment_id: uuid.UUID
    status: str
    runs: list[RunRecord] = field(default_factory=list)
    # 1 / classes for classification; None for regression.
    chance: float | None = None


def metric_of(run: RunRecord, metric: str) -> float | None:
    """The run's final value of `metric`; None once it diverged (it has no final value)."""
    if run.status == "diverged":
        return None
    value = run.early_loss if metric == "early_train_loss" else run.summary.get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def trains(runs: Sequence[RunRecord], chance: float | None = None) -> bool | None:
    """Whether a variant trains at a point (see TRAINS_MEANS); None while undecided."""
    if any(r.status == "diverged" for r in runs):
        return False
    done = [r for r in runs if r.status == "succeeded"]
    if not done or len(done) < len(runs):
        return None
    for run in done:
        final = run.summary.get("final_train_loss")
        if final is None or run.first_loss is None or not final < TRAINS_RATIO * run.first_loss:
            return False
        accuracy = run.summary.get("test_accuracy")
        if chance is not None and (
            accuracy is None or accuracy < chance + ABOVE_CHANCE * (1 - chance)
        ):
            return False
    return True


def default_metric(points: Sequence[PointRecord]) -> str:
    """test_accuracy where the task has one, else test_loss."""
    has_accuracy = any("test_accuracy" in r.summary for p in points for r in p.runs)
    return "test_accuracy" if has_accuracy else "test_loss"


def better(a: float | None, b: float | None, higher: bool) -> bool:
    """Whether `a` beats `b`; a missing (diverged) value loses to any value."""
    if a is None:
        return False
    if b is None:
        return True
    return a > b if higher else a < b


def compute(
    sweep_id: uuid.UUID, axes: Sequence[str], points: Sequence[PointRecord], metric: str | None
) -> SweepFindings:
    """The sweep's findings over its points' runs."""
    metric = metric or default_metric(points)
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; metrics: {', '.join(METRICS)}")
    higher = metric == "test_accuracy"
    variants = list(dict.fromkeys(r.variant for p in points for r in p.runs))
    per_point = []
    diverged = []
    for p in points:
        at: dict[str, Any] = {}
        for v in variants:
            runs = [r for r in p.runs if r.variant == v]
            at[v] = {
                "final": spread([metric_of(r, metric) for r in runs]),
                "early_train_loss": spread([r.early_loss for r in runs]),
                "final_train_loss": spread([metric_of(r, "final_train_loss") for r in runs]),
                "per_seed": {str(r.seed): metric_of(r, metric) for r in runs},
                "diverged_seeds": [r.seed for r in runs if r.status == "diverged"],
                "trains": trains(runs, p.chance),
            }
            diverged += [
                {"index": p.index, "values": p.values, "variant": v, "seed": r.seed,
                 "step": r.diverged_step}
                for r in runs
                if r.status == "diverged"
            ]  # fmt: skip
        per_point.append(
            {"index": p.index, "values": p.values, "experiment_id": p.experiment_id,
             "status": p.status, "variants": at}
        )  # fmt: skip
    best = {axis: best_values(axis, per_point, variants, higher) for axis in axes}
    up_to = {axis: trains_up_to(axis, per_point, variants) for axis in axes}
    pairs = [pair(a, b, per_point, higher) for a, b in combinations(variants, 2)]
    findings = {
        "sweep_id": sweep_id,
        "metric": metric,
        "higher_is_better": higher,
        "trains_means": TRAINS_MEANS,
        "axes": list(axes),
        "variants": variants,
        "points": per_point,
        "diverged": diverged,
        "best": best,
        "trains_up_to": up_to,
        "pairs": pairs,
    }
    findings["statements"] = statements(findings)
    return SweepFindings.model_validate(findings)


def best_values(
    axis: str, points: list[dict[str, Any]], variants: list[str], higher: bool
) -> dict[str, Any]:
    """Per variant: the axis value of the point with the best mean final metric."""
    out: dict[str, Any] = {}
    for v in variants:
        scored = [p for p in points if p["variants"][v]["final"]["mean"] is not None]
        if not scored:
            continue
        sign = 1 if higher else -1
        top = max(scored, key=lambda p: sign * p["variants"][v]["final"]["mean"])
        out[v] = {"value": top["values"][axis], "final": top["variants"][v]["final"]}
    return out


def trains_up_to(axis: str, points: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """Per variant, on a numeric axis: the largest value at which it trains at every point."""
    values = sorted({p["values"][axis] for p in points if _number(p["values"][axis])})
    if not values or len(values) < len({repr(p["values"][axis]) for p in points}):
        return {}
    out: dict[str, Any] = {}
    for v in variants:
        verdict = {}
        for value in values:
            at = [p["variants"][v]["trains"] for p in points if p["values"][axis] == value]
            verdict[value] = None if None in at else all(at)
        if None in verdict.values():
            continue
        good = [x for x in values if verdict[x]]
        top = good[-1] if good else None
        above = [x for x in values if top is not None and x > top]
        reasons = []
        if above:
            failing = [p for p in points if p["values"][axis] == above[0]]
            seeds = sorted({s for p in failing for s in p["variants"][v]["diverged_seeds"]})
            reasons.append(f"diverged in seeds {seeds}" if seeds else "it did not learn")
        out[v] = {
            "value": top,
            "next": above[0] if above else None,
            "why_not_next": reasons[0] if reasons else None,
        }
    return out


def pair(a: str, b: str, points: list[dict[str, Any]], higher: bool) -> dict[str, Any]:
    """Points where b beats a in every seed, where a beats b in every seed, and the rest."""
    out: dict[str, Any] = {"a": a, "b": b, "b_better": [], "a_better": [], "mixed": []}
    for p in points:
        seeds_a, seeds_b = p["variants"][a]["per_seed"], p["variants"][b]["per_seed"]
        common = [s for s in seeds_a if s in seeds_b]
        if not common or p["status"] != "succeeded":
            continue
        if all(better(seeds_b[s], seeds_a[s], higher) for s in common):
            out["b_better"].append(p["values"])
        elif all(better(seeds_a[s], seeds_b[s], higher) for s in common):
            out["a_better"].append(p["values"])
        else:
            out["mixed"].append(p["values"])
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def early_losses(session: Session, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """Each run's (step, loss) pairs over the first EARLY_WINDOW[1] steps."""
    rows = session.execute(
        select(Metric.run_id, Metric.step, Metric.value).where(
            Metric.run_id.in_(run_ids), Metric.key == "train_loss", Metric.step <= EARLY_WINDOW[1]
        )
    )
    out: dict[uuid.UUID, list[Any]] = {r: [] for r in run_ids}
    for run_id, step, value in rows:
        out[run_id].append((step, value))
    return out


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else None


def sweep_findings(session: Session, sweep: Sweep, metric: str | None) -> SweepFindings:
    """The findings of a sweep whose points' runs are loaded."""
    run_ids = [r.id for p in sweep.points for r in p.runs]
    early = early_losses(session, run_ids)
    records = []
    for position, p in enumerate(sweep.points):
        runs = []
        for r in p.runs:
            steps = early[r.id]
            runs.append(
                RunRecord(
                    r.variant,
                    r.seed,
                    str(r.status),
                    r.diverged_step,
                    r.summary or {},
                    _mean([v for s, v in steps if s <= FIRST_STEPS]),
                    _mean([v for s, v in steps if EARLY_WINDOW[0] <= s <= EARLY_WINDOW[1]]),
                )
            )
        info = CATALOG.get(p.spec["dataset"]["name"])
        chance = 1 / info.num_outputs if info and info.task == "classification" else None
        records.append(
            PointRecord(position, p.sweep_values or {}, p.id, str(p.status), runs, chance)
        )
    return compute(sweep.id, list(sweep.axes), records, metric)
