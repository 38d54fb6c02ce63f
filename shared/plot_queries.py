"""The reads the plots make: activation captures per variant, beside shared/results.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import results
from shared.models import Histogram

ACTIVATION = "activation"


@dataclass(frozen=True)
class RunRef:
    """The identity of one run: which variant, which seed."""

    id: uuid.UUID
    variant: str
    seed: int


@dataclass(frozen=True)
class Capture:
    """One stored histogram of one layer at one step."""

    step: int
    edges: list[float]
    counts: list[int]
    stats: dict[str, Any]


def captured_layers(session: Session, runs: dict[str, RunRef]) -> dict[str, set[str]]:
    """Variant -> layers with at least one activation capture."""
    by_id = {r.id: v for v, r in runs.items()}
    query = (
        select(Histogram.run_id, Histogram.layer)
        .where(Histogram.run_id.in_(list(by_id)), Histogram.kind == ACTIVATION)
        .distinct()
    )
    out: dict[str, set[str]] = {v: set() for v in runs}
    for run_id, layer in session.execute(query):
        out[by_id[run_id]].add(layer)
    return out


def captured_steps(
    session: Session, runs: dict[str, RunRef], layers: dict[str, str]
) -> dict[str, list[int]]:
    """Variant -> the steps at which its chosen layer was captured."""
    out: dict[str, list[int]] = {}
    for variant, layer in layers.items():
        query = select(Histogram.step).where(
            Histogram.run_id == runs[variant].id,
            Histogram.layer == layer,
            Histogram.kind == ACTIVATION,
        )
        out[variant] = sorted(session.scalars(query))
    return out


def read_captures(
    session: Session,
    runs: dict[str, RunRef],
    layers: dict[str, str],
    steps: Sequence[int] = (),
) -> dict[str, list[Capture]]:
    """Variant -> its chosen layer's captures (at `steps`, or all), in step order."""
    out: dict[str, list[Capture]] = {}
    for variant, layer in layers.items():
        rows = results.read_histograms(session, [runs[variant].id], [layer], steps, ACTIVATION)
        out[variant] = [Capture(h.step, h.edges, h.counts, h.stats) for h in rows]
    return out


def read_stats(
    session: Session, runs: dict[str, RunRef], layers: dict[str, str]
) -> dict[str, list[Capture]]:
    """Like read_captures but without edges and counts: only the stats column is read."""
    out: dict[str, list[Capture]] = {}
    for variant, layer in layers.items():
        query = (
            select(Histogram.step, Histogram.stats)
            .where(
                Histogram.run_id == runs[variant].id,
                Histogram.layer == layer,
                Histogram.kind == ACTIVATION,
            )
            .order_by(Histogram.step)
        )
        out[variant] = [Capture(step, [], [], stats) for step, stats in session.execute(query)]
    return out


def fit_epochs(session: Session, run_ids: Sequence[uuid.UUID]) -> list[int]:
    """The epochs at which a regression run stored its prediction curve."""
    return sorted({c.epoch for c in results.read_curves(session, run_ids, "fit")})
