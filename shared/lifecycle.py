r"""Every change of an experiment's status, in one place: conditional UPDATEs on a caller's session.

The API, the worker and the reaper ask this module; none of them writes `status`, `worker`,
`cancel_requested`, `heartbeat_at` or `checkpoint` themselves. Each transition is one guarded
UPDATE whose row count says whether it happened, so two processes racing for the same row
(two deliveries of a task, a reaper and a worker, a cancel and a finish) never both win.
Nothing here commits: the caller's unit of work does, and enqueueing comes after that commit.

    queued --claim--> running --finish--> succeeded | cancelled
      ^                  |  \--fail / settle--> failed | cancelled
      +--hand_back / requeue_stale (worker gone) / resend_unclaimed (message gone)--+

A worker passes its id to every write it makes, so a worker presumed dead (its experiment given
to another) finds its writes refused and lets go.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from shared import results
from shared.errors import Conflict
from shared.models import Experiment, Run, utcnow
from shared.spec import ExperimentSpec
from shared.status import ExperimentStatus, RunStatus

log = logging.getLogger(__name__)

# Re-sends of a queued experiment back off up to this many doublings of requeue_after_s.
MAX_DOUBLINGS = 6


class HandBack(enum.StrEnum):
    """What became of an experiment its worker gave up at shutdown."""

    requeued = "requeued"
    cancelled = "cancelled"
    not_held = "not_held"


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended, as the worker reports it at finish."""

    run_id: uuid.UUID
    status: RunStatus
    diverged_step: int | None
    summary: dict[str, Any]


def _changed(result: Any) -> int:
    """Rows an UPDATE touched (execute() is typed as returning a plain Result)."""
    return result.rowcount if isinstance(result, CursorResult) else 0


def held_by(experiment_id: uuid.UUID, worker: str) -> tuple[ColumnElement[bool], ...]:
    """Where-clause of every write a worker makes: only while it still holds the experiment."""
    return (Experiment.id == experiment_id, Experiment.worker == worker)


def create(session: Session, spec: ExperimentSpec, preset: str | None, owner: str) -> Experiment:
    """A queued experiment with one queued run per (seed, variant); added, not committed."""
    now = utcnow()
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
        created_at=now,
        enqueued_at=now,
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
    return experiment


def claim(session: Session, experiment_id: uuid.UUID, worker: str) -> bool:
    """Queued -> running for `worker`; False if another delivery got it first, or it ended."""
    now = utcnow()
    started = session.scalar(select(Experiment.started_at).where(Experiment.id == experiment_id))
    claimed = _changed(
        session.execute(
            update(Experiment)
            .where(
                Experiment.id == experiment_id,
                Experiment.status == ExperimentStatus.queued,
                Experiment.cancel_requested.is_(False),
            )
            .values(
                status=ExperimentStatus.running,
                attempt=Experiment.attempt + 1,
                started_at=started or now,
                heartbeat_at=now,
                worker=worker,
            )
        )
    )
    if not claimed:
        log.info("experiment %s is not queued any more; not claimed", experiment_id)
        return False
    session.execute(
        update(Run).where(Run.experiment_id == experiment_id).values(status=RunStatus.running)
    )
    log.info("experiment %s claimed by %s", experiment_id, worker)
    return True


def stamp(
    session: Session, experiment_id: uuid.UUID, worker: str, progress: float | None = None
) -> bool:
    """Heartbeat (and progress, when given) of a held experiment; False if no longer held."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = min(1.0, progress)
    held = _changed(
        session.execute(update(Experiment).where(*held_by(experiment_id, worker)).values(**values))
    )
    if not held:
        log.warning("experiment %s is no longer held by %s; not stamped", experiment_id, worker)
    return bool(held)


def poll(session: Session, experiment_id: uuid.UUID, worker: str) -> tuple[bool, bool]:
    """(cancel requested, still held by `worker`): what a training worker checks between steps."""
    cancel, holder = session.execute(
        select(Experiment.cancel_requested, Experiment.worker).where(Experiment.id == experiment_id)
    ).one()
    return bool(cancel), holder == worker


def store_checkpoint(session: Session, experiment_id: uuid.UUID, worker: str, blob: bytes) -> bool:
    """Keep the resumable state of a held experiment; False if no longer held."""
    return bool(
        _changed(
            session.execute(
                update(Experiment).where(*held_by(experiment_id, worker)).values(checkpoint=blob)
            )
        )
    )


def request_cancel(session: Session, experiment: Experiment) -> ExperimentStatus:
    """Queued: cancelled at once. Running: flagged, its worker stops at the next step.

    Returns the status the experiment is in afterwards; Conflict if it had already finished.
    """
    now = utcnow()
    queued = _changed(
        session.execute(
            update(Experiment)
            .where(Experiment.id == experiment.id, Experiment.status == ExperimentStatus.queued)
            .values(status=ExperimentStatus.cancelled, finished_at=now, cancel_requested=True)
        )
    )
    if queued:
        session.execute(
            update(Run).where(Run.experiment_id == experiment.id).values(status=RunStatus.cancelled)
        )
        log.info("experiment %s cancelled while queued", experiment.id)
        return ExperimentStatus.cancelled
    running = _changed(
        session.execute(
            update(Experiment)
            .where(Experiment.id == experiment.id, Experiment.status == ExperimentStatus.running)
            .values(cancel_requested=True)
        )
    )
    if not running:
        raise Conflict(f"experiment {experiment.id} already finished ({experiment.status})")
    log.info("experiment %s: cancel requested of its worker", experiment.id)
    return ExperimentStatus.running


def finish(
    session: Session,
    experiment_id: uuid.UUID,
    worker: str,
    cancelled: bool,
    outcomes: Iterable[RunOutcome],
) -> ExperimentStatus | None:
    """Running -> succeeded (or cancelled) with each run's outcome and the findings.

    None if `worker` no longer holds it. The experiment row is updated first: its row lock
    orders this before a reaper that could otherwise give it away while the outcome is written.
    """
    status = ExperimentStatus.cancelled if cancelled else ExperimentStatus.succeeded
    ours = _changed(
        session.execute(
            update(Experiment)
            .where(*held_by(experiment_id, worker))
            .values(status=status, finished_at=utcnow(), checkpoint=None)
        )
    )
    if not ours:
        log.warning("experiment %s was given to another worker; not finished", experiment_id)
        return None
    for outcome in outcomes:
        session.execute(
            update(Run)
            .where(Run.id == outcome.run_id)
            .values(
                status=outcome.status,
                diverged_step=outcome.diverged_step,
                summary=outcome.summary,
            )
        )
    session.flush()
    runs = session.scalars(select(Run).where(Run.experiment_id == experiment_id)).all()
    values: dict[str, Any] = {"findings": results.experiment_findings(session, runs)}
    if not cancelled:
        values["progress"] = 1.0
    session.execute(update(Experiment).where(Experiment.id == experiment_id).values(**values))
    log.info("experiment %s %s", experiment_id, status)
    return status


def settle(
    session: Session,
    experiment_id: uuid.UUID,
    where: tuple[Any, ...],
    status: ExperimentStatus,
    **values: Any,
) -> bool:
    """End an experiment nobody trains any more, if `where` still holds.

    Its rows so far are kept and its checkpoint dropped; runs that never finished end with the
    same status, finished ones keep theirs. Returns whether it was ended here.
    """
    ended = _changed(
        session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, *where)
            .values(status=status, worker=None, finished_at=utcnow(), checkpoint=None, **values)
        )
    )
    if not ended:
        return False
    session.execute(
        update(Run)
        .where(
            Run.experiment_id == experiment_id,
            Run.status.in_([RunStatus.queued, RunStatus.running]),
        )
        .values(status=RunStatus(status))
    )
    log.info("experiment %s settled as %s", experiment_id, status)
    return True


def fail(session: Session, experiment_id: uuid.UUID, worker: str, error: str) -> bool:
    """Running -> failed with a readable error, if `worker` still holds it."""
    return settle(
        session, experiment_id, held_by(experiment_id, worker), ExperimentStatus.failed, error=error
    )


def hand_back(session: Session, experiment_id: uuid.UUID, worker: str) -> HandBack:
    """The worker shuts down with its checkpoint stored: running -> queued for the next worker.

    Unless a cancel came in before training saw it: then the experiment ends cancelled here,
    since claim would refuse it and it would wait, queued, for ever.
    """
    running = (*held_by(experiment_id, worker), Experiment.status == ExperimentStatus.running)
    cancel_pending = (*running, Experiment.cancel_requested.is_(True))
    if settle(session, experiment_id, cancel_pending, ExperimentStatus.cancelled):
        log.info("experiment %s cancelled at shutdown", experiment_id)
        return HandBack.cancelled
    requeued = _changed(
        session.execute(
            update(Experiment)
            .where(*running)
            .values(
                status=ExperimentStatus.queued,
                worker=None,
                enqueued_at=utcnow(),
                enqueue_count=Experiment.enqueue_count + 1,
            )
        )
    )
    if not requeued:
        log.warning(
            "experiment %s was not held by %s at shutdown; left alone", experiment_id, worker
        )
        return HandBack.not_held
    log.info("experiment %s handed back at shutdown", experiment_id)
    return HandBack.requeued


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
    closed = []
    for experiment_id in session.scalars(select(Experiment.id).where(orphaned)):
        if settle(session, experiment_id, (orphaned,), ExperimentStatus.cancelled):
            log.warning("experiment %s was cancelled while it had no worker", experiment_id)
            closed.append(experiment_id)
    return closed


def requeue_stale(
    session: Session, stale_before: datetime, max_losses: int
) -> list[tuple[str, str]]:
    """Running with a stale heartbeat -> queued again (or failed after `max_losses` losses).

    Returns (experiment id, queue) of those to send again, once the caller has committed.
    """
    now = utcnow()
    to_send = []
    stale = session.execute(
        select(Experiment.id, Experiment.queue, Experiment.worker_losses).where(
            Experiment.status == ExperimentStatus.running,
            Experiment.heartbeat_at < stale_before,
        )
    ).all()
    for experiment_id, queue, before in stale:
        losses = before + 1
        still_stale = (
            Experiment.status == ExperimentStatus.running,
            Experiment.heartbeat_at < stale_before,
        )
        if losses >= max_losses:
            error = (
                f"its worker was lost {losses} times mid-run (killed, or out of memory?); "
                "not retried again (BNLAB_MAX_WORKER_LOSSES)"
            )
            if settle(
                session,
                experiment_id,
                still_stale,
                ExperimentStatus.failed,
                worker_losses=losses,
                error=error,
            ):
                log.error("experiment %s lost its worker %d times; failed", experiment_id, losses)
            continue
        reset = _changed(
            session.execute(
                update(Experiment)
                .where(Experiment.id == experiment_id, *still_stale)
                .values(
                    status=ExperimentStatus.queued,
                    worker=None,
                    enqueued_at=now,
                    enqueue_count=Experiment.enqueue_count + 1,
                    worker_losses=losses,
                )
            )
        )
        if reset:
            log.warning("experiment %s lost its worker; queued again", experiment_id)
            to_send.append((str(experiment_id), queue))
    return to_send


def resend_unclaimed(
    session: Session, requeue_after: timedelta, queue_is_empty: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """Queued and unclaimed past its backoff -> sent again (the gap doubles with each send).

    A queue the broker holds no message for (`queue_is_empty`) lost its messages (a broker that
    restarted empty, say): its experiments are sent again now, whatever their backoff.
    Returns (experiment id, queue) of those to send, once the caller has committed.
    """
    now = utcnow()
    waiting = session.execute(
        select(
            Experiment.id, Experiment.queue, Experiment.enqueued_at, Experiment.enqueue_count
        ).where(
            Experiment.status == ExperimentStatus.queued,
            Experiment.cancel_requested.is_(False),
            or_(Experiment.enqueued_at.is_(None), Experiment.enqueued_at < now - requeue_after),
        )
    ).all()
    emptied = {queue for queue in {row.queue for row in waiting} if queue_is_empty(queue)}
    to_send = []
    for experiment_id, queue, enqueued_at, count in waiting:
        doublings = 0 if queue in emptied else min(max(count - 1, 0), MAX_DOUBLINGS)
        if enqueued_at is not None and enqueued_at > now - requeue_after * 2**doublings:
            continue
        resent = _changed(
            session.execute(
                update(Experiment)
                .where(
                    Experiment.id == experiment_id,
                    Experiment.status == ExperimentStatus.queued,
                    Experiment.enqueue_count == count,
                )
                .values(enqueued_at=now, enqueue_count=count + 1)
            )
        )
        if resent:
            log.warning("experiment %s unclaimed since %s; sent again", experiment_id, enqueued_at)
            to_send.append((str(experiment_id), queue))
    return to_send
