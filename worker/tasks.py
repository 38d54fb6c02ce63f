"""Celery tasks: thin adapters that take ids and hand the work to worker.runner."""

from __future__ import annotations

import uuid

from shared.broker import TRAIN_TASK, send_training
from shared.config import get_settings
from worker.celery_app import app
from worker.runner import Ending, run_group


@app.task(name=TRAIN_TASK)
def train_group(group_id: str, queue: str = "any") -> str:
    """Train one seed group; safe to deliver twice (the claim lets only one through)."""
    ending = run_group(get_settings(), uuid.UUID(group_id))
    if ending == Ending.requeued:
        # Handed back at shutdown, checkpoint stored: whichever worker comes next resumes it.
        send_training(app, group_id, queue)
    return ending
