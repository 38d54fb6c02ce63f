"""Finds experiments the broker lost track of, and queues them again: policy only.

Brokers do not redeliver reliably (a SIGKILLed worker's task was not redelivered within a minute,
neither by Redis nor by the embedded transports), so the database decides. This module says when
and with which limits; the transitions themselves (shared.lifecycle) are conditional, so when
several workers reap at once only one of them sends:
- a cancel that reached an experiment after its worker died, or while it shut down, is settled
  (claim refuses such an experiment, so nobody else would ever finish it);
- a running experiment whose heartbeat went stale is queued again, or failed after
  BNLAB_MAX_WORKER_LOSSES losses;
- so is one whose training step has not advanced for the stall limit (a hung step: a deadlocked
  data read, a wedged CUDA call), although its heartbeat thread still beats;
- a queued one that nobody claimed is sent again, with a growing gap, or at once when the broker
  holds no message at all for its queue.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from shared import lifecycle
from shared.broker import queue_length, send_training
from shared.config import Settings
from shared.db import session_scope
from shared.models import utcnow
from shared.retention import apply_retention

# Without BNLAB_STALL_S, a step may take this many times the slowest step seen, and never less
# than the floor (which also covers loading the data before the first step).
STALL_MULTIPLE = 10
STALL_FLOOR_S = 300.0


def stall_limit_s(settings: Settings, slowest_step_s: float | None, training: bool) -> float:
    """How long a group's step may stay where it is before its worker is presumed stuck;
    before an attempt's first step (loading data, maybe downloading it), never under the floor."""
    if settings.stall_s > 0 and training:
        return settings.stall_s
    return max(STALL_MULTIPLE * (slowest_step_s or 0.0), STALL_FLOOR_S, settings.stall_s)


def reap(settings: Settings, celery: Celery) -> list[str]:
    """Queue again what was lost, and delete what outlived BNLAB_RETENTION_DAYS; returns the
    seed group ids sent."""
    stale_before = utcnow() - timedelta(seconds=settings.heartbeat_stale_s)
    with session_scope(settings.resolved_database_url) as session:
        lifecycle.close_cancelled(session, stale_before)
        to_send = lifecycle.requeue_stale(session, stale_before, settings.max_worker_losses)
        to_send += lifecycle.requeue_stalled(
            session,
            lambda slowest, training: stall_limit_s(settings, slowest, training),
            settings.max_worker_losses,
        )
        to_send += lifecycle.resend_unclaimed(
            session,
            timedelta(seconds=settings.requeue_after_s),
            lambda queue: queue_length(celery, queue) == 0,
        )
    # After the commit, so the worker that receives it finds the row as we left it.
    for group_id, queue in to_send:
        send_training(celery, group_id, queue)
    apply_retention(settings)
    return [group_id for group_id, _ in to_send]
