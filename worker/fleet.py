"""What each beat adds to the worker's row for the fleet view: host, device, what it trains and
how fast (optimizer steps, one per variant per batch, from the stored train_loss steps)."""

from __future__ import annotations

import functools
import socket
import time
import uuid
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from shared.fleet import PRUNE_AFTER
from shared.models import Metric, Run, SeedGroup, WorkerBeat


@functools.cache
def device_name(queues: tuple[str, ...]) -> str:
    """'cpu', or the CUDA device's name when this worker may train on a GPU."""
    if "gpu" not in queues and "any" not in queues:
        return "cpu"
    import torch  # a worker has it loaded already; the solo pool never forks after this

    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except RuntimeError:  # a broken driver must not stop the heartbeat that carries this
        return "unknown"


class _Speed:
    """Steps counted at the previous beat, per run of the group trained then, and when."""

    group: uuid.UUID | None = None
    steps: dict[uuid.UUID, int] = {}
    at = 0.0
    total = 0


def steps_done(session: Session, group_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Each run's last stored training step (the primary key's last entry: no scan)."""
    run_ids = session.scalars(select(Run.id).where(Run.group_id == group_id)).all()
    done = {}
    for run_id in run_ids:
        last = session.scalar(
            select(func.max(Metric.step)).where(Metric.run_id == run_id, Metric.key == "train_loss")
        )
        done[run_id] = int(last or 0)
    return done


def _new_steps(done: dict[uuid.UUID, int]) -> int:
    # A resumed run steps back to its checkpoint: that is no negative speed.
    return sum(max(0, n - _Speed.steps.get(run, 0)) for run, n in done.items())


def record(session: Session, row: WorkerBeat, current: uuid.UUID | None, now: datetime) -> None:
    """Fill the fleet columns of this worker's row, and prune workers long gone.

    `current` is the seed group this worker trains (None when idle).
    """
    row.host = socket.gethostname()
    row.device = device_name(tuple(row.queues.split(",")))
    group = session.get(SeedGroup, current) if current is not None else None
    row.experiment_id = group.experiment_id if group is not None else None
    clock = time.monotonic()
    if _Speed.group is not None and _Speed.group != current:
        # The last stretch of the group that just ended still counts.
        _Speed.total += _new_steps(steps_done(session, _Speed.group))
        _Speed.group, _Speed.steps = None, {}
    row.steps_per_s = None
    if current is not None:
        done = steps_done(session, current)
        if _Speed.group == current and clock > _Speed.at:
            new = _new_steps(done)
            _Speed.total += new
            row.steps_per_s = new / (clock - _Speed.at)
        _Speed.group, _Speed.steps = current, done
    _Speed.at = clock
    row.steps_total = _Speed.total
    session.execute(delete(WorkerBeat).where(WorkerBeat.last_seen < now - PRUNE_AFTER))
