"""Experiment lifecycle on the API side: store, enqueue, list, cancel. The routes stay thin."""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import datetime
from typing import Any

from celery import Celery
from fastapi import HTTPException, status
from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session, selectinload

from shared.broker import send_training
from shared.models import Experiment, ExperimentStatus, Run, utcnow
from shared.spec import ExperimentSpec

log = logging.getLogger(__name__)


def create_experiment(
    session: Session, spec: ExperimentSpec, preset: str | None, owner: str
) -> Experiment:
    """Store the experiment and one queued run per (variant, seed), and commit."""
    experiment = Experiment(
        id=uuid.uuid4(),
        owner=owner,
        name=spec.name,
        preset=preset,
        status=ExperimentStatus.queued,
        queue=spec.queue,
        spec=spec.model_dump(mode="json"),
        progress=0.0,
        attempt=0,
        cancel_requested=False,
        created_at=utcnow(),
        enqueued_at=utcnow(),
        enqueue_count=1,
    )
    position = 0
    for seed in spec.training.seeds:
        for variant in spec.variants:
            experiment.runs.append(
                Run(id=uuid.uuid4(), position=position, variant=variant.name, seed=seed, summary={})
            )
            position += 1
    session.add(experiment)
    session.commit()
    return experiment


def enqueue(celery: Celery, experiment: Experiment) -> None:
    """Send the training task; the row is already committed, so the worker will find it."""
    try:
        send_training(celery, str(experiment.id), experiment.queue)
    except Exception:
        # The experiment stays queued in the database; the reaper enqueues it again.
        log.exception("could not enqueue experiment %s; the reaper will retry", experiment.id)


def get_experiment(session: Session, experiment_id: uuid.UUID, owner: str) -> Experiment:
    """The owner's experiment with its runs, or 404."""
    experiment = session.scalar(
        select(Experiment)
        .where(Experiment.id == experiment_id, Experiment.owner == owner)
        .options(selectinload(Experiment.runs))
    )
    if experiment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment {experiment_id}")
    return experiment


def list_experiments(
    session: Session, owner: str, status_filter: str | None, limit: int, cursor: str | None
) -> tuple[list[Experiment], str | None]:
    """Newest first, `limit` at a time; the cursor marks the last one seen."""
    query = (
        select(Experiment)
        .where(Experiment.owner == owner)
        .options(selectinload(Experiment.runs))
        .order_by(Experiment.created_at.desc(), Experiment.id.desc())
        .limit(limit + 1)
    )
    if status_filter is not None:
        query = query.where(Experiment.status == status_filter)
    if cursor is not None:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Experiment.created_at < created_at,
                and_(Experiment.created_at == created_at, Experiment.id < last_id),
            )
        )
    items = list(session.scalars(query))
    next_cursor = encode_cursor(items[limit - 1]) if len(items) > limit else None
    return items[:limit], next_cursor


def encode_cursor(experiment: Experiment) -> str:
    """An opaque token for 'after this experiment'."""
    raw = f"{experiment.created_at.isoformat()}|{experiment.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Inverse of encode_cursor; 422 for anything else."""
    try:
        created, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(last_id)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from exc


def cancel_experiment(session: Session, experiment: Experiment) -> Experiment:
    """Queued: cancelled at once. Running: flagged; the worker stops at its next step."""
    now = utcnow()
    queued: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Experiment)
        .where(Experiment.id == experiment.id, Experiment.status == ExperimentStatus.queued)
        .values(status=ExperimentStatus.cancelled, finished_at=now, cancel_requested=True)
    )
    if queued.rowcount == 0:
        running: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Experiment)
            .where(Experiment.id == experiment.id, Experiment.status == ExperimentStatus.running)
            .values(cancel_requested=True)
        )
        if running.rowcount == 0:
            session.rollback()
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"experiment {experiment.id} already finished ({experiment.status})",
            )
    else:
        session.execute(
            update(Run).where(Run.experiment_id == experiment.id).values(status="cancelled")
        )
    session.commit()
    session.refresh(experiment)
    return experiment
