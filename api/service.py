"""The API's experiment services: store, enqueue, find, list, cancel. The routes stay thin.

Status changes are asked of shared.lifecycle; this layer commits, and speaks in domain errors
(shared.errors) that api/errors.py turns into HTTP statuses.
"""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import datetime

from celery import Celery
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from api import storage
from api.storage import StorageEstimate
from shared import lifecycle
from shared.broker import send_training
from shared.errors import Conflict, InvalidInput, NotFound
from shared.models import Experiment
from shared.spec import ExperimentSpec
from shared.status import ExperimentStatus

log = logging.getLogger(__name__)


def create_experiment(
    session: Session,
    spec: ExperimentSpec,
    preset: str | None,
    owner: str,
    seeds_per_group: int,
    estimate: StorageEstimate,
) -> Experiment:
    """Store the experiment with its storage estimate, its seed groups and runs, and commit
    once (so a worker finds them; a second commit for the estimate delayed every start)."""
    experiment = lifecycle.create(session, spec, preset, owner, seeds_per_group)
    storage.record(experiment, estimate)
    session.commit()
    return experiment


def enqueue(celery: Celery, experiment: Experiment) -> None:
    """Send one training task per seed group; the rows are committed, so workers find them."""
    for group in experiment.groups:
        try:
            send_training(celery, str(group.id), experiment.queue)
        except Exception:
            # The group stays queued in the database; the reaper sends it again.
            log.exception("could not enqueue seed group %s; the reaper will retry", group.id)


def get_experiment(session: Session, experiment_id: uuid.UUID, owner: str) -> Experiment:
    """The owner's experiment with its runs, or 404."""
    experiment = session.scalar(
        select(Experiment)
        .where(Experiment.id == experiment_id, Experiment.owner == owner)
        .options(selectinload(Experiment.runs), selectinload(Experiment.groups))
    )
    if experiment is None:
        raise NotFound(f"no experiment {experiment_id}")
    return experiment


def list_experiments(
    session: Session,
    owner: str,
    status_filter: ExperimentStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Experiment], str | None]:
    """Newest first, `limit` at a time; the cursor marks the last one seen."""
    query = (
        select(Experiment)
        .where(Experiment.owner == owner)
        .options(selectinload(Experiment.runs), selectinload(Experiment.groups))
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
    """Inverse of encode_cursor; InvalidInput for anything else."""
    try:
        created, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(last_id)
    except ValueError as exc:
        raise InvalidInput(("query", "cursor"), "invalid cursor") from exc


def cancel_experiment(session: Session, experiment: Experiment) -> Experiment:
    """Queued: cancelled at once. Running: flagged; the worker stops at its next step."""
    try:
        lifecycle.request_cancel(session, experiment)
    except Conflict:
        session.rollback()
        raise
    session.commit()
    session.refresh(experiment)
    return experiment
