"""Signs of life: a background thread stamps the worker and the experiment it is training, and
runs the reaper on its own clock. The stamp itself is a lifecycle transition (shared.lifecycle)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from celery import Celery

from shared import lifecycle
from shared.config import Settings
from shared.db import session_scope
from shared.models import WorkerBeat, utcnow
from worker import fleet
from worker.reaper import reap

log = logging.getLogger(__name__)

# Who this process is, in every write it makes to an experiment it holds.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class _State:
    """What the heartbeat thread reports on; written by the task, read by the thread."""

    current: uuid.UUID | None = None
    shutdown = threading.Event()


def set_current(group_id: uuid.UUID | None) -> None:
    """Tell the heartbeat which seed group this process is training (None when idle)."""
    _State.current = group_id


def request_shutdown() -> None:
    """Ask the training in progress to stop at the next step boundary (warm shutdown)."""
    _State.shutdown.set()


def shutdown_requested() -> bool:
    """True once the worker has been asked to stop."""
    return _State.shutdown.is_set()


def beat(settings: Settings, queues: list[str]) -> None:
    """Stamp this worker, and the experiment it trains, as alive now."""
    now = utcnow()
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(WorkerBeat, WORKER_ID)
        if row is None:
            row = WorkerBeat(id=WORKER_ID, queues=",".join(queues), started_at=now, last_seen=now)
            session.add(row)
        else:
            row.last_seen = now
        current = _State.current
        fleet.record(session, row, current, now)
        if current is not None:
            lifecycle.stamp(session, current, WORKER_ID)


def start_heartbeat(settings: Settings, queues: list[str], celery: Celery) -> threading.Thread:
    """Start the daemon thread that beats, and reaps lost experiments, on its own clock."""

    def loop() -> None:
        last_reap = 0.0
        while True:
            try:
                beat(settings, queues)
                if time.monotonic() - last_reap >= settings.reap_every_s:
                    last_reap = time.monotonic()
                    reap(settings, celery)
            except Exception:
                log.exception("heartbeat failed; will try again")
            if _State.shutdown.wait(settings.heartbeat_every_s):
                return

    thread = threading.Thread(target=loop, name="bnlab-heartbeat", daemon=True)
    thread.start()
    return thread
