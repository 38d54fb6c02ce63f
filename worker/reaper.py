"""Finds experiments the broker lost track of, and queues them again: policy only.

Brokers do not redeliver reliably (a SIGKILLed worker's task was not redelivered within a minute,
neither by Redis nor by the embedded transports), so the database decides. This module says when
and with which limits; the transitions themselves (shared.lifecycle) are conditional, so when
several workers reap at once only one of them sends:
- a cancel that reached an experiment after its worker died, or while it shut down, is settled
  (claim refuses such an experiment, so nobody else would ever finish it);
- a running experiment whose heartbeat went stale is queued again, or failed after
  BNLAB_MAX_WORKER_LOSSES losses;
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


def reap(settings: Settings, celery: Celery) -> list[str]:
    """Queue again what was lost; returns the ids sent."""
    stale_before = utcnow() - timedelta(seconds=settings.heartbeat_stale_s)
    with session_scope(settings.resolved_database_url) as session:
        lifecycle.close_cancelled(session, stale_before)
        to_send = lifecycle.requeue_stale(session, stale_before, settings.max_worker_losses)
        to_send += lifecycle.resend_unclaimed(
            session,
            timedelta(seconds=settings.requeue_after_s),
            lambda queue: queue_length(celery, queue) == 0,
        )
    # After the commit, so the worker that receives it finds the row as we left it.
    for experiment_id, queue in to_send:
        send_training(celery, experiment_id, queue)
    return [experiment_id for experiment_id, _ in to_send]
