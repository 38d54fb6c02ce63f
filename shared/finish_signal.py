"""Word that an experiment has finished, heard by every API process the moment it commits.

The wait route (GET /api/v1/experiments/{id}/wait) sleeps on this instead of polling the
database: on PostgreSQL a NOTIFY on CHANNEL, which PostgreSQL delivers only if the finishing
transaction commits; on SQLite (one machine by definition) a marker file beside the database,
touched after the commit, whose modification time the API watches.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

CHANNEL = "bnlab_finished"
_PENDING = "bnlab_finished_pending"


def announce(session: Session, experiment_id: uuid.UUID) -> None:
    """Say, within the transaction that finishes it, that this experiment has finished."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, str(experiment_id))))
    else:
        session.info[_PENDING] = True


def marker(url: str) -> Path | None:
    """The file touched when an experiment of this SQLite database finishes (None: not SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).with_name(Path(parsed.database).name + ".finished")


@event.listens_for(Session, "after_commit")
def _touch_marker(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        path = marker(session.get_bind().engine.url.render_as_string())
        if path is not None:
            path.touch()


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: object) -> None:
    session.info.pop(_PENDING, None)
