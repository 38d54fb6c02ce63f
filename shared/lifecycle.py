r"""Every change of an experiment's status, in one place: conditional UPDATEs on a caller's session.

The API, the worker and the reaper ask this module; none of them writes `status`, `worker`,
`cancel_requested`, `heartbeat_at` or `checkpoint` themselves. Each transition is one guarded
UPDATE whose row count says whether it happened, so two processes racing for the same row
(two deliveries of a task, a reaper and a worker, a cancel and a finish) never both win.
Nothing here commits: the caller's unit of work does, and enqueueing comes after that commit.

    queued --claim--> running --finish--> succeeded | cancelled
      ^                  |  \--fail / settle--> failed | cancelled
      +--hand_back / requeue_stale (worker gone) / requeue_stalled (step stuck) /
         resend_unclaimed (message gone)--+

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

from sqlalchemy import ColumnElement, CursorResult, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from shared.errors import Conflict
from shared.groups import build_groups, roll_up
from shared.models import Experiment, Run, SeedGroup, utcnow
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


def held_by(group_id: uuid.UUID, worker: str) -> tuple[ColumnElement[bool], ...]:
    """Where-clause of every write a worker makes: only while it still holds the seed group."""
    return (SeedGroup.id == group_id, SeedGroup.worker == worker)


def _lock(session: Session, experiment_id: uuid.UUID) -> Experiment:
    """The experiment row, locked until the caller commits (PostgreSQL; SQLite has one writer).

    Every transition of a group takes its experiment's lock first, so two groups finishing at
    once roll the experiment up one after the other, each seeing the other's outcome.
    """
    # populate_existing: the caller may hold this experiment (and its groups) loaded before the
    # lock was granted, as the API does; their attributes must be the row as it is now, or a
    # cancel that waited for a finishing worker would roll a stale "running" back over it.
    return session.execute(
        select(Experiment)
        .where(Experiment.id == experiment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _experiment_of(session: Session, group_id: uuid.UUID) -> uuid.UUID | None:
    return session.scalar(select(SeedGroup.experiment_id).where(SeedGroup.id == group_id))


def create(
    session: Session,
    spec: ExperimentSpec,
    preset: str | None,
    owner: str,
    seeds_per_group: int = 1,
) -> Experiment:
    """A queued experiment, its seeds split into queued groups of `seeds_per_group`, and one
    queued run per (seed, variant); added, not committed."""
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
    )
    for group in build_groups(spec, seeds_per_group, enqueued_at=now):
        experiment.groups.append(group)
        experiment.runs.extend(group.runs)
    session.add(experiment)
    return experiment


def claim(session: Session, group_id: uuid.UUID, worker: str) -> uuid.UUID | None:
    """Queued -> running for `worker`: the group's experiment id, or None if another delivery
    got it first, it ended, or its experiment is being cancelled."""
    experiment_id = _experiment_of(session, group_id)
    if experiment_id is None:
        return None
    experiment = _lock(session, experiment_id)
    if experiment.cancel_requested:
        return None
    now = utcnow()
    started = session.scalar(select(SeedGroup.started_at).where(SeedGroup.id == group_id))
    claimed = _changed(
        session.execute(
            update(SeedGroup)
            .where(SeedGroup.id == group_id, SeedGroup.status == ExperimentStatus.queued)
            .values(
                status=ExperimentStatus.running,
                attempt=SeedGroup.attempt + 1,
                started_at=started or now,
                heartbeat_at=now,
                step=None,  # until this attempt's first step: the limit while loading applies
                step_at=now,
                worker=worker,
            )
        )
    )
    if not claimed:
        return None
    session.execute(
        update(Run).where(Run.group_id == group_id).values(status=RunStatus.running, worker=worker)
    )
    roll_up(session, experiment)
    log.info("experiment %s: seed group %s claimed by %s", experiment_id, group_id, worker)
    return experiment_id


def stamp(
    session: Session,
    group_id: uuid.UUID,
    worker: str,
    progress: float | None = None,
    step: int | None = None,
    slowest_step_s: float | None = None,
) -> bool:
    """Heartbeat (and progress, the training step and the slowest step so far, when given) of a
    held group; False if no longer held. `step_at` moves only when the step does."""
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now}
    if progress is not None:
        values["progress"] = min(1.0, progress)
    if step is not None:
        advanced = or_(SeedGroup.step.is_(None), SeedGroup.step != step)
        values["step"] = step
        values["step_at"] = case((advanced, now), else_=SeedGroup.step_at)
    if slowest_step_s is not None:
        values["slowest_step_s"] = slowest_step_s
    held = _changed(
        session.execute(update(SeedGroup).where(*held_by(group_id, worker)).values(**values))
    )
    if not held:
        log.warning("seed group %s is no longer held by %s; not stamped", group_id, worker)
        return False
    # One statement, no lock: the experiment's progress is the mean of its groups'.
    experiment_id = _experiment_of(session, group_id)
    mean = (
        select(func.avg(SeedGroup.progress))
        .where(SeedGroup.experiment_id == experiment_id)
        .scalar_subquery()
    )
    session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id)
        .values(progress=mean, heartbeat_at=now)
    )
    return True


def poll(session: Session, group_id: uuid.UUID, worker: str) -> tuple[bool, bool]:
    """(cancel requested, still held by `worker`): what a training worker checks between steps."""
    cancel, holder = session.execute(
        select(Experiment.cancel_requested, SeedGroup.worker)
        .join(SeedGroup, SeedGroup.experiment_id == Experiment.id)
        .where(SeedGroup.id == group_id)
    ).one()
    return bool(cancel), holder == worker


def store_checkpoint(session: Session, group_id: uuid.UUID, worker: str, blob: bytes) -> bool:
    """Keep the resumable state of a held group; False if no longer held."""
    return bool(
        _changed(
            session.execute(
                update(SeedGroup).where(*held_by(group_id, worker)).values(checkpoint=blob)
            )
        )
    )


def record_dataset(
    session: Session, group_id: uuid.UUID, worker: str, dataset: dict[str, Any]
) -> bool:
    """Show on the experiment which data set its held group really trains on, and why."""
    experiment_id = session.scalar(
        select(SeedGroup.experiment_id).where(*held_by(group_id, worker))
    )
    if experiment_id is None:
        return False
    session.execute(
        update(Experiment).where(Experiment.id == experiment_id).values(dataset=dataset)
    )
    return True


def request_cancel(session: Session, experiment: Experiment) -> ExperimentStatus:
    """Queued groups: cancelled at once. Running ones: flagged, their workers stop at the next
    step. Returns the experiment's status afterwards; Conflict if it had already finished."""
    locked = _lock(session, experiment.id)
    if locked.status.finished:
        raise Conflict(f"experiment {experiment.id} already finished ({locked.status})")
    session.execute(
        update(Experiment).where(Experiment.id == experiment.id).values(cancel_requested=True)
    )
    queued = session.scalars(
        select(SeedGroup.id).where(
            SeedGroup.experiment_id == experiment.id, SeedGroup.status == ExperimentStatus.queued
        )
    ).all()
    for group_id in queued:
        settle(
            session,
            group_id,
            (SeedGroup.status == ExperimentStatus.queued,),
            ExperimentStatus.cancelled,
        )
    status = roll_up(session, locked)
    log.info("experiment %s: cancel requested; now %s", experiment.id, status)
    return status


def finish(
    session: Session,
    group_id: uuid.UUID,
    worker: str,
    cancelled: bool,
    outcomes: Iterable[RunOutcome],
    device: str | None = None,
) -> ExperimentStatus | None:
    """Running -> succeeded (or cancelled) with each run's outcome; the group's new status, or
    None if `worker` no longer holds it."""
    experiment_id = _experiment_of(session, group_id)
    if experiment_id is None:
        return None
    experiment = _lock(session, experiment_id)
    status = ExperimentStatus.cancelled if cancelled else ExperimentStatus.succeeded
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "checkpoint": None}
    if not cancelled:
        values["progress"] = 1.0
    ours = _changed(
        session.execute(update(SeedGroup).where(*held_by(group_id, worker)).values(**values))
    )
    if not ours:
        log.warning("seed group %s was given to another worker; not finished", group_id)
        return None
    for outcome in outcomes:
        session.execute(
            update(Run)
            .where(Run.id == outcome.run_id)
            .values(
                status=outcome.status,
                diverged_step=outcome.diverged_step,
                summary=outcome.summary,
                device=device,
            )
        )
    roll_up(session, experiment)
    log.info("experiment %s: seed group %s %s", experiment_id, group_id, status)
    return status


def settle(
    session: Session,
    group_id: uuid.UUID,
    where: tuple[Any, ...],
    status: ExperimentStatus,
    **values: Any,
) -> bool:
    """End a group nobody trains any more, if `where` still holds, and roll its experiment up.

    Its rows so far are kept and its checkpoint dropped; runs that never finished end with the
    same status, finished ones keep theirs. The caller holds the experiment's lock.
    """
    ended = _changed(
        session.execute(
            update(SeedGroup)
            .where(SeedGroup.id == group_id, *where)
            .values(status=status, worker=None, finished_at=utcnow(), checkpoint=None, **values)
        )
    )
    if not ended:
        return False
    session.execute(
        update(Run)
        .where(Run.group_id == group_id, Run.status.in_([RunStatus.queued, RunStatus.running]))
        .values(status=RunStatus(status))
    )
    experiment_id = _experiment_of(session, group_id)
    assert experiment_id is not None
    roll_up(session, _lock(session, experiment_id))
    log.info("seed group %s settled as %s", group_id, status)
    return True


def fail(session: Session, group_id: uuid.UUID, worker: str, error: str) -> bool:
    """Running -> failed with a readable error, if `worker` still holds the group."""
    experiment_id = _experiment_of(session, group_id)
    if experiment_id is None:
        return False
    _lock(session, experiment_id)
    return settle(
        session, group_id, held_by(group_id, worker), ExperimentStatus.failed, error=error
    )


def hand_back(session: Session, group_id: uuid.UUID, worker: str) -> HandBack:
    """The worker shuts down with its checkpoint stored: running -> queued for the next worker.

    Unless a cancel came in before training saw it: then the group ends cancelled here, since
    claim would refuse it and it would wait, queued, for ever.
    """
    experiment_id = _experiment_of(session, group_id)
    if experiment_id is None:
        return HandBack.not_held
    experiment = _lock(session, experiment_id)
    running = (*held_by(group_id, worker), SeedGroup.status == ExperimentStatus.running)
    if experiment.cancel_requested and settle(
        session, group_id, running, ExperimentStatus.cancelled
    ):
        log.info("seed group %s cancelled at shutdown", group_id)
        return HandBack.cancelled
    requeued = _changed(
        session.execute(
            update(SeedGroup)
            .where(*running)
            .values(
                status=ExperimentStatus.queued,
                worker=None,
                enqueued_at=utcnow(),
                enqueue_count=SeedGroup.enqueue_count + 1,
            )
        )
    )
    if not requeued:
        log.warning("seed group %s not held by %s at shutdown; left alone", group_id, worker)
        return HandBack.not_held
    roll_up(session, experiment)
    log.info("experiment %s: seed group %s handed back at shutdown", experiment_id, group_id)
    return HandBack.requeued


def close_cancelled(session: Session, stale_before: datetime) -> list[uuid.UUID]:
    """Cancel groups whose experiment was asked to cancel but that have no live worker:
    queued, or running and stale. Returns the groups ended."""
    orphaned = or_(
        SeedGroup.status == ExperimentStatus.queued,
        and_(SeedGroup.status == ExperimentStatus.running, SeedGroup.heartbeat_at < stale_before),
    )
    rows = session.execute(
        select(SeedGroup.id, SeedGroup.experiment_id)
        .join(Experiment, Experiment.id == SeedGroup.experiment_id)
        .where(Experiment.cancel_requested.is_(True), orphaned)
        .order_by(SeedGroup.experiment_id)
    ).all()
    closed = []
    for group_id, experiment_id in rows:
        _lock(session, experiment_id)
        if settle(session, group_id, (orphaned,), ExperimentStatus.cancelled):
            log.warning("seed group %s was cancelled while it had no worker", group_id)
            closed.append(group_id)
    return closed


def _take_back(
    session: Session,
    group_id: uuid.UUID,
    experiment_id: uuid.UUID,
    still: tuple[Any, ...],
    losses: int,
    max_losses: int,
    why: str,
) -> bool:
    """A group whose worker is lost (`why`) -> queued again, or failed at `max_losses` losses,
    if `still` holds. True when it was queued again (and must be sent)."""
    experiment = _lock(session, experiment_id)
    if losses >= max_losses:
        error = (
            f"its worker was lost {losses} times mid-run (killed, out of memory, or stuck?); "
            "not retried again (BNLAB_MAX_WORKER_LOSSES)"
        )
        if settle(
            session, group_id, still, ExperimentStatus.failed, worker_losses=losses, error=error
        ):
            log.error("seed group %s lost its worker %d times; failed", group_id, losses)
        return False
    reset = _changed(
        session.execute(
            update(SeedGroup)
            .where(SeedGroup.id == group_id, *still)
            .values(
                status=ExperimentStatus.queued,
                worker=None,
                enqueued_at=utcnow(),
                enqueue_count=SeedGroup.enqueue_count + 1,
                worker_losses=losses,
            )
        )
    )
    if reset:
        roll_up(session, experiment)
        log.warning("seed group %s %s; queued again", group_id, why)
    return bool(reset)


def requeue_stale(
    session: Session, stale_before: datetime, max_losses: int
) -> list[tuple[str, str]]:
    """Running groups with a stale heartbeat -> queued again (or failed after `max_losses`).

    Returns (group id, queue) of those to send again, once the caller has committed.
    """
    to_send = []
    stale = session.execute(
        select(SeedGroup.id, SeedGroup.experiment_id, Experiment.queue, SeedGroup.worker_losses)
        .join(Experiment, Experiment.id == SeedGroup.experiment_id)
        .where(SeedGroup.status == ExperimentStatus.running, SeedGroup.heartbeat_at < stale_before)
        .order_by(SeedGroup.experiment_id)
    ).all()
    for group_id, experiment_id, queue, before in stale:
        still_stale = (
            SeedGroup.status == ExperimentStatus.running,
            SeedGroup.heartbeat_at < stale_before,
        )
        why = "lost its worker"
        if _take_back(session, group_id, experiment_id, still_stale, before + 1, max_losses, why):
            to_send.append((str(group_id), queue))
    return to_send


def requeue_stalled(
    session: Session, stall_limit_s: Callable[[float | None, bool], float], max_losses: int
) -> list[tuple[str, str]]:
    """Running groups whose step has not advanced for `stall_limit_s(slowest step, training)`
    seconds -> queued again, as a lost worker (a hung step: its heartbeat thread still beats).
    `training` is False while the attempt has done no step yet (it is loading its data).

    The stuck worker finds its writes refused when it wakes, and lets go.
    Returns (group id, queue) of those to send again, once the caller has committed.
    """
    now = utcnow()
    to_send = []
    running = session.execute(
        select(
            SeedGroup.id,
            SeedGroup.experiment_id,
            Experiment.queue,
            SeedGroup.worker_losses,
            SeedGroup.step,
            SeedGroup.step_at,
            SeedGroup.slowest_step_s,
            SeedGroup.worker,
        )
        .join(Experiment, Experiment.id == SeedGroup.experiment_id)
        .where(SeedGroup.status == ExperimentStatus.running, SeedGroup.step_at.is_not(None))
        .order_by(SeedGroup.experiment_id)
    ).all()
    for group_id, experiment_id, queue, before, step, step_at, slowest, worker in running:
        limit = stall_limit_s(slowest, step is not None)
        stalled_before = now - timedelta(seconds=limit)
        if step_at is None or step_at >= stalled_before:
            continue
        still_stalled = (
            SeedGroup.status == ExperimentStatus.running,
            SeedGroup.worker == worker,
            SeedGroup.step_at < stalled_before,
        )
        why = f"stalled at step {step} for over {limit:g} s on {worker}"
        if _take_back(session, group_id, experiment_id, still_stalled, before + 1, max_losses, why):
            to_send.append((str(group_id), queue))
    return to_send


def resend_unclaimed(
    session: Session, requeue_after: timedelta, queue_is_empty: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """Queued and unclaimed past its backoff -> sent again (the gap doubles with each send).

    A queue the broker holds no message for (`queue_is_empty`) lost its messages (a broker that
    restarted empty, say): its groups are sent again now, whatever their backoff.
    Returns (group id, queue) of those to send, once the caller has committed.
    """
    now = utcnow()
    waiting = session.execute(
        select(SeedGroup.id, Experiment.queue, SeedGroup.enqueued_at, SeedGroup.enqueue_count)
        .join(Experiment, Experiment.id == SeedGroup.experiment_id)
        .where(
            SeedGroup.status == ExperimentStatus.queued,
            Experiment.cancel_requested.is_(False),
            or_(SeedGroup.enqueued_at.is_(None), SeedGroup.enqueued_at < now - requeue_after),
        )
    ).all()
    emptied = {queue for queue in {row.queue for row in waiting} if queue_is_empty(queue)}
    to_send = []
    for group_id, queue, enqueued_at, count in waiting:
        doublings = 0 if queue in emptied else min(max(count - 1, 0), MAX_DOUBLINGS)
        if enqueued_at is not None and enqueued_at > now - requeue_after * 2**doublings:
            continue
        resent = _changed(
            session.execute(
                update(SeedGroup)
                .where(
                    SeedGroup.id == group_id,
                    SeedGroup.status == ExperimentStatus.queued,
                    SeedGroup.enqueue_count == count,
                )
                .values(enqueued_at=now, enqueue_count=count + 1)
            )
        )
        if resent:
            log.warning("seed group %s unclaimed since %s; sent again", group_id, enqueued_at)
            to_send.append((str(group_id), queue))
    return to_send
