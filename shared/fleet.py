"""The fleet as the API shows it: workers, what they train, how fast; queue depths."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Experiment, WorkerBeat, utcnow

# A worker row not stamped for this long is deleted by the next beat of any worker.
PRUNE_AFTER = timedelta(hours=1)


class WorkerPublic(BaseModel):
    """One worker process."""

    id: str
    host: str | None
    queues: list[str]
    device: str | None
    alive: bool
    busy: bool
    # Only when the experiment is the asker's own; another owner's is just "busy".
    experiment_id: uuid.UUID | None
    steps_per_s: float | None
    steps_total: int
    started_at: datetime
    last_seen: datetime


class FleetPublic(BaseModel):
    """Workers seen within the prune window, and the messages waiting in each queue."""

    workers: list[WorkerPublic]
    # None: the broker could not be asked.
    queues: dict[str, int | None]
    alive_within_s: float


def read_workers(session: Session, owner: str | None, stale_s: float) -> list[WorkerPublic]:
    """Workers seen within PRUNE_AFTER, newest first; alive if seen within `stale_s`.

    owner None (the operator's /metrics) shows every experiment id.
    """
    now = utcnow()
    rows = session.execute(
        select(WorkerBeat, Experiment.owner)
        .outerjoin(Experiment, Experiment.id == WorkerBeat.experiment_id)
        .where(WorkerBeat.last_seen >= now - PRUNE_AFTER)
        .order_by(WorkerBeat.last_seen.desc())
    ).all()
    workers = []
    for row, experiment_owner in rows:
        alive = (now - row.last_seen).total_seconds() <= stale_s
        busy = alive and row.experiment_id is not None
        visible = busy and (owner is None or experiment_owner == owner)
        workers.append(
            WorkerPublic(
                id=row.id,
                host=row.host,
                queues=[q for q in row.queues.split(",") if q],
                device=row.device,
                alive=alive,
                busy=busy,
                experiment_id=row.experiment_id if visible else None,
                steps_per_s=row.steps_per_s if busy else None,
                steps_total=row.steps_total or 0,
                started_at=row.started_at,
                last_seen=row.last_seen,
            )
        )
    return workers
