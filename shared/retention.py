"""Retention: finished experiments older than BNLAB_RETENTION_DAYS are deleted by the reaper."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import deletion
from shared.config import Settings
from shared.db import session_scope
from shared.models import utcnow

log = logging.getLogger(__name__)

# Experiments deleted per reap, so that one reap never holds a long transaction; the next reap
# (BNLAB_REAP_EVERY_S later) takes the next batch.
BATCH = 50


def apply_retention(settings: Settings) -> int:
    """Delete one batch of expired experiments (nothing when retention is off); how many.

    Called by the worker's reaper, in a transaction of its own.
    """
    if not settings.retention_days:
        return 0
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    with session_scope(settings.resolved_database_url) as session:
        count = deletion.delete_finished_before(session, cutoff, BATCH)
    if count:
        log.info(
            "retention: deleted %d experiment(s) finished before %s", count, cutoff.isoformat()
        )
        with session_scope(settings.resolved_database_url) as session:
            give_back_space(session)
    return count


def give_back_space(session: Session) -> None:
    """On SQLite, return freed pages to the file system (a no-op unless auto_vacuum=INCREMENTAL).

    PostgreSQL's autovacuum makes the space of deleted rows reusable on its own.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA incremental_vacuum"))
