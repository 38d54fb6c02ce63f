"""Finds experiments the broker lost track of, and queues them again.

Brokers do not redeliver reliably (a SIGKILLed worker's task was not redelivered within a minute,
neither by Redis nor by the embedded transports), so the database decides: a running experiment
whose heartbeat went stale is queued again, and a queued one that nobody claimed is sent again.
Every update is conditional, so when several workers reap at once only one of them sends.

A cancel that reached an experiment after its worker died, or while it shut down, is settled
here too: claim refuses such an experiment, so nobody else would ever finish it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from shared.broker import queue_length, send_training
from shared.config import Settings
from shared.db import session_scope
from shared.models import Experiment, ExperimentStatus, Run, RunStatus, utcnow
from shared.retention import apply_retention

log = logging.getLogger(__name__)

# Re-sends of a queued experiment back off up to this many doublings of requeue_after_s.
MAX_DOUBLINGS = 6


def close_cancelled(session: Session, stale_before: datetime) -> list[uuid.UUID]:
    """Cancel what was asked to cancel but has no live worker: queued, or running and stale."""
    orphaned = and_(
        Experiment.cancel_requested.is_(True),
        or_(
            Experiment.status == ExperimentStatus.queued,
            and_(
                Experiment.status == ExperimentStatus.running,
                Experiment.heartbeat_at < stale_before,
            ),
        ),
    )
    ids = list(session.scalars(select(Experiment.id).where(orphaned)))
    for experiment_id in ids:
        if settle(session, experiment_id, (orphaned,), ExperimentStatus.cancelled):
            log.warning("experiment %s was cancelled while it had no worker", experiment_id)
    return ids


def settle(
    session: Session,
    experiment_id: uuid.UUID,
    where: tuple[Any, ...],
    status: ExperimentStatus,
    **values: Any,
) -> bool:
    """End an experiment that nobody trains any more, if `where` still holds.

    Its rows so far are kept and its checkpoint dropped; runs that never finished end with the
    same status, finished ones keep theirs. Returns whether it was ended here.
    """
    ended = session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, *where)
        .values(status=status, worker=None, finished_at=utcnow(), checkpoint=None, **values)
    )
    if not ended.rowcount:
        return False
    session.execute(
        update(Run)
        .where(
            Run.experiment_id == experiment_id,
            Run.status.in_([RunStatus.queued, RunStatus.running]),
        )
        .values(status=RunStatus(status))
    )
    return True


def give_up(
    session: Session, experiment_id: uuid.UUID, losses: int, still_stale: tuple[Any, ...]
) -> None:
    """Fail an experiment that keeps losing its worker; its rows so far are kept."""
    error = (
        f"its worker was lost {losses} times mid-run (killed, or out of memory?); "
        "not retried again (BNLAB_MAX_WORKER_LOSSES)"
    )
    failed = settle(
        session,
        experiment_id,
        still_stale,
        ExperimentStatus.failed,
        worker_losses=losses,
        error=error,
    )
    if failed:
        log.error("experiment %s lost its worker %d times; failed", experiment_id, losses)


def reap(settings: Settings, celery: Celery) -> list[str]:
    """Queue again what was lost; returns the ids sent."""
    now = utcnow()
    to_send: list[tuple[str, str]] = []
    with session_scope(settings.resolved_database_url) as session:
        stale_before = now - timedelta(seconds=settings.heartbeat_stale_s)
        close_cancelled(session, stale_before)
        stale = session.execute(
            select(Experiment.id, Experiment.queue, Experiment.worker_losses).where(
                Experiment.status == ExperimentStatus.running,
                Experiment.heartbeat_at < stale_before,
            )
        ).all()
        for experiment_id, queue, losses in stale:
            still_stale = (
                Experiment.id == experiment_id,
                Experiment.status == ExperimentStatus.running,
                Experiment.heartbeat_at < stale_before,
            )
            if losses + 1 >= settings.max_worker_losses:
                give_up(session, experiment_id, losses + 1, still_stale)
                continue
            reset = session.execute(
                update(Experiment)
                .where(*still_stale)
                .values(
                    status=ExperimentStatus.queued,
                    worker=None,
                    enqueued_at=now,
                    enqueue_count=Experiment.enqueue_count + 1,
                    worker_losses=losses + 1,
                )
            )
            if reset.rowcount:
                log.warning("experiment %s lost its worker; queued again", experiment_id)
                to_send.append((str(experiment_id), queue))

        waiting = session.execute(
            select(
                Experiment.id, Experiment.queue, Experiment.enqueued_at, Experiment.enqueue_count
            ).where(
                Experiment.status == ExperimentStatus.queued,
                Experiment.cancel_requested.is_(False),
                or_(
                    Experiment.enqueued_at.is_(None),
                    Experiment.enqueued_at < now - timedelta(seconds=settings.requeue_after_s),
                ),
            )
        ).all()
        # Experiments wait on a queue the broker holds no message for: the messages were lost (a
        # broker restarted empty, say), so they are sent again now rather than at their backoff.
        emptied = {q for q in {row.queue for row in waiting} if queue_length(celery, q) == 0}
        for experiment_id, queue, enqueued_at, count in waiting:
            doublings = 0 if queue in emptied else min(max(count - 1, 0), MAX_DOUBLINGS)
            gap = settings.requeue_after_s * 2**doublings
            if enqueued_at is not None and enqueued_at > now - timedelta(seconds=gap):
                continue
            resent = session.execute(
                update(Experiment)
                .where(
                    Experiment.id == experiment_id,
                    Experiment.status == ExperimentStatus.queued,
                    Experiment.enqueue_count == count,
                )
                .values(enqueued_at=now, enqueue_count=count + 1)
            )
            if resent.rowcount:
                log.warning(
                    "experiment %s unclaimed since %s; sent again", experiment_id, enqueued_at
                )
                to_send.append((str(experiment_id), queue))
    # After the commit, so the worker that receives it finds the row as we left it.
    for experiment_id, queue in to_send:
        send_training(celery, experiment_id, queue)
    apply_retention(settings)
    return [experiment_id for experiment_id, _ in to_send]
