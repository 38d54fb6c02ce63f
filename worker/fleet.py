"""What each beat adds to the worker's row for the fleet view: host, device, what it trains and
how fast (optimizer steps, one per variant per batch: the train_loss points it stored)."""

from __future__ import annotations

import functools
import socket
import threading
import time
import uuid
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from shared.fleet import PRUNE_AFTER
from shared.models import SeedGroup, WorkerBeat


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


class _Steps:
    """Optimizer steps this process has stored (train_loss points), and what the last beat saw.

    Fed by the database sink as it writes, so a group that starts and ends between two beats
    still counts.
    """

    total = 0
    seen = 0
    at = 0.0
    lock = threading.Lock()


def count_stored(steps: int) -> None:
    """Add the training steps the sink just stored."""
    with _Steps.lock:
        _Steps.total += steps


def record(session: Session, row: WorkerBeat, current: uuid.UUID | None, now: datetime) -> None:
    """Fill the fleet columns of this worker's row, and prune workers long gone.

    `current` is the seed group this worker trains (None when idle).
    """
    row.host = socket.gethostname()
    row.device = device_name(tuple(row.queues.split(",")))
    group = session.get(SeedGroup, current) if current is not None else None
    row.experiment_id = group.experiment_id if group is not None else None
    clock = time.monotonic()
    total = _Steps.total
    busy = current is not None and _Steps.at and clock > _Steps.at
    row.steps_per_s = (total - _Steps.seen) / (clock - _Steps.at) if busy else None
    _Steps.seen, _Steps.at = total, clock
    row.steps_total = total
    session.execute(delete(WorkerBeat).where(WorkerBeat.last_seen < now - PRUNE_AFTER))
