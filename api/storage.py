"""What a spec will store, estimated at submission, and each owner's storage quota.

The estimate counts rows exactly where the spec decides them (one training loss per step, the
evaluations, the probes' histograms, a regression's curves; a run that diverges or is cancelled
stores fewer) and prices each kind of row at a rough size on PostgreSQL, index included: an
order of magnitude, which is what a quota needs, not an exact figure. An owner's usage is the
sum of the estimates of the experiments they still have; deleting experiments gives quota back.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.submission import probe_histograms, total_steps
from shared.config import Settings
from shared.datasets import CATALOG
from shared.models import Experiment
from shared.shapes import describe_model
from shared.spec import ExperimentSpec

# Bytes per stored row, table and primary-key index together.
METRIC_ROW_BYTES = 110
HISTOGRAM_ROW_BYTES = 600  # plus HISTOGRAM_BIN_BYTES per bin: edges and counts as JSON
HISTOGRAM_BIN_BYTES = 24
CURVE_ROW_BYTES = 200  # plus CURVE_POINT_BYTES per point: x and y as JSON
CURVE_POINT_BYTES = 40
# A regression's prediction curve is drawn on this many grid points (worker/training/data.py).
CURVE_GRID_POINTS = 200


class StorageEstimate(BaseModel):
    """Rows and bytes an experiment will store, by kind."""

    metric_points: int
    histograms: int
    curves: int
    rows: int
    bytes: int


class StorageUsage(BaseModel):
    """An owner's quota, what they use, and what a spec would add."""

    estimate: StorageEstimate
    used_bytes: int
    quota_bytes: int | None


def estimate(spec: ExperimentSpec) -> StorageEstimate:
    """The rows and bytes `spec` will store once trained to the end."""
    info = CATALOG[spec.dataset.name]
    runs = len(spec.variants) * len(spec.training.seeds)
    epochs = spec.training.epochs
    evaluations = epochs // spec.training.eval_every + (
        1 if epochs % spec.training.eval_every else 0
    )
    # train_loss every step; then two metrics per evaluation (test_loss with test_accuracy or,
    # for regression, train_loss_eval).
    metric_points = total_steps(spec) + 2 * evaluations * runs
    shapes = [describe_model(v.model, info.input_shape, info.num_outputs) for v in spec.variants]
    histograms = probe_histograms(spec, shapes)
    regression = info.task == "regression"
    # A regression stores its train and test points once per run, and a fit curve per evaluation.
    point_curves = 2 * runs if regression else 0
    fit_curves = evaluations * runs if regression else 0
    curves = point_curves + fit_curves
    size = (
        metric_points * METRIC_ROW_BYTES
        + histograms * (HISTOGRAM_ROW_BYTES + HISTOGRAM_BIN_BYTES * spec.probes.bins)
        + point_curves * (CURVE_ROW_BYTES + CURVE_POINT_BYTES * spec.dataset.n)
        + fit_curves * (CURVE_ROW_BYTES + CURVE_POINT_BYTES * CURVE_GRID_POINTS)
    )
    return StorageEstimate(
        metric_points=metric_points,
        histograms=histograms,
        curves=curves,
        rows=metric_points + histograms + curves,
        bytes=size,
    )


def usage(session: Session, owner: str) -> int:
    """Bytes the owner's experiments are estimated to hold."""
    used = session.scalar(
        select(func.coalesce(func.sum(Experiment.estimated_bytes), 0)).where(
            Experiment.owner == owner
        )
    )
    return int(used or 0)


def check_quota(
    session: Session, spec: ExperimentSpec, owner: str, settings: Settings
) -> StorageUsage:
    """The spec's estimate and the owner's usage; 422 giving both when over the quota."""
    return _within_quota("this experiment", estimate(spec), session, owner, settings)


def check_sweep_quota(
    session: Session, specs: list[ExperimentSpec], owner: str, settings: Settings
) -> list[StorageEstimate]:
    """Each point's estimate; 422 when all of them together would pass the owner's quota."""
    estimates = [estimate(spec) for spec in specs]
    total = StorageEstimate(
        **{name: sum(getattr(e, name) for e in estimates) for name in StorageEstimate.model_fields}
    )
    _within_quota(f"this sweep's {len(specs)} points", total, session, owner, settings)
    return estimates


def _within_quota(
    what: str, added: StorageEstimate, session: Session, owner: str, settings: Settings
) -> StorageUsage:
    """The owner's usage with `added`; 422 saying how much `what` would store, the usage and
    the quota, when over it."""
    found = StorageUsage(
        estimate=added,
        used_bytes=usage(session, owner),
        quota_bytes=settings.storage_quota_bytes or None,
    )
    quota = found.quota_bytes
    if quota is None or found.used_bytes + added.bytes <= quota:
        return found
    message = (
        f"{what} would store about {megabytes(found.estimate.bytes)} "
        f"({found.estimate.rows:,} rows); you use {megabytes(found.used_bytes)} of your "
        f"{megabytes(quota)} quota (BNLAB_STORAGE_QUOTA_BYTES): delete experiments or "
        "store less (fewer steps, probes less often)"
    )
    error = {
        "loc": ["body"],
        "msg": message,
        "type": "quota_exceeded",
        "estimate": found.estimate.model_dump(),
        "used_bytes": found.used_bytes,
        "quota_bytes": quota,
    }
    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[error])


def record(experiment: Experiment, found: StorageEstimate) -> None:
    """Keep the estimate on the experiment, where usage() adds it up (the caller commits)."""
    experiment.estimated_rows = found.rows
    experiment.estimated_bytes = found.bytes


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
