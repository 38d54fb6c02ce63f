"""What a queued experiment waits for, from the workers' own rows (WorkerBeat lists each queue a
live worker consumes): a `device: cuda` spec with no GPU worker says so rather than fail."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Experiment, WorkerBeat, utcnow
from shared.status import ExperimentStatus

# The words for a queue nobody serves; the others are named as they are.
WAITING_FOR = {"gpu": "a GPU worker", "cpu": "a CPU worker", "any": "a worker"}


def served_queues(session: Session, stale_s: float) -> set[str]:
    """The queues some worker that beat within `stale_s` consumes."""
    since = utcnow() - timedelta(seconds=stale_s)
    rows = session.scalars(select(WorkerBeat.queues).where(WorkerBeat.last_seen >= since))
    return {queue for row in rows for queue in row.split(",") if queue}


def waiting_note(experiment: Experiment, served: set[str]) -> str | None:
    """`waiting for a GPU worker` (say) while some of its groups wait on a queue no live worker
    consumes; None otherwise."""
    if experiment.queue in served or experiment.status.finished:
        return None
    if not any(g.status == ExperimentStatus.queued for g in experiment.groups):
        return None
    who = WAITING_FOR.get(experiment.queue, f"a worker of queue {experiment.queue}")
    return f"waiting for {who}"
