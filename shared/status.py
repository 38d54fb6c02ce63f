"""The statuses of an experiment and of its runs: one definition for the database, core and API.

Kept free of SQLAlchemy and torch so the training core, the API and the ORM can all import it.
"""

from __future__ import annotations

import enum


class ExperimentStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        """True once nothing will train it again."""
        return self not in ACTIVE


# Statuses in which a worker may still train the experiment (or will, once one claims it).
ACTIVE = (ExperimentStatus.queued, ExperimentStatus.running)


class RunStatus(enum.StrEnum):
    pending = "pending"  # only inside the training core: not yet started in this attempt
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    diverged = "diverged"
    failed = "failed"
    cancelled = "cancelled"
