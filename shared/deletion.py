"""Deleting experiments: one conditional DELETE, so a running experiment is never removed.

The experiment row holds the checkpoint; its runs, and the runs' metrics, histograms and curves,
go with it through the foreign keys' ON DELETE CASCADE, in the caller's transaction. Nothing
here commits. Space comes back as the README's "Deleting data" section says.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, delete, select
from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound
from shared.models import Experiment
from shared.status import ACTIVE


def deletable() -> ColumnElement[bool]:
    """The condition under which an experiment's row may be deleted."""
    return Experiment.status.not_in(ACTIVE)


def delete_experiment(session: Session, experiment_id: uuid.UUID, owner: str) -> None:
    """Delete the owner's experiment with everything it stored; NotFound, or Conflict while it
    is queued or running."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(Experiment).where(
            Experiment.id == experiment_id, Experiment.owner == owner, deletable()
        )
    )
    if result.rowcount == 1:
        return
    status = session.scalar(
        select(Experiment.status).where(Experiment.id == experiment_id, Experiment.owner == owner)
    )
    if status is None:
        raise NotFound(f"no experiment {experiment_id}")
    raise Conflict(f"experiment {experiment_id} is {status}: cancel it first, then delete it")


def delete_finished_before(session: Session, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` finished experiments (any owner) that finished before `cutoff`."""
    ids = list(
        session.scalars(
            select(Experiment.id)
            .where(deletable(), Experiment.finished_at < cutoff)
            .order_by(Experiment.finished_at)
            .limit(batch)
        )
    )
    if not ids:
        return 0
    # Conditional again: nothing that was picked may have been resumed since (it cannot be
    # today, but the lifecycle may one day re-run a finished experiment).
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(Experiment).where(Experiment.id.in_(ids), deletable())
    )
    return result.rowcount
