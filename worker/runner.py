"""One seed group of an experiment from claim to final status: claim -> load -> train -> outcome.

The glue between the queue's task, the database and the training core. Every status change is
asked of shared.lifecycle, with this worker's id, so a worker presumed dead writes nothing.
"""

from __future__ import annotations

import enum
import io
import logging
import traceback
import uuid
from typing import Any

import torch

from shared import lifecycle
from shared.config import Settings
from shared.db import session_scope
from shared.models import SeedGroup
from shared.spec import ExperimentSpec
from worker.config import training_config
from worker.db_sink import DatabaseSink
from worker.heartbeat import WORKER_ID, set_current
from worker.timings import Timings
from worker.training.loop import TrainResult, train

log = logging.getLogger(__name__)


class Ending(enum.StrEnum):
    """How one delivery of the training task ended, for the task and its log."""

    skipped = "skipped"  # not queued any more: a duplicate delivery, or cancelled meanwhile
    lost = "lost"  # given to another worker while this one trained; this one let go
    requeued = "requeued"  # handed back at shutdown, to be sent again
    succeeded = "succeeded"
    cancelled = "cancelled"
    failed = "failed"


RunIds = dict[tuple[str, int], uuid.UUID]


def claim(settings: Settings, group_id: uuid.UUID) -> uuid.UUID | None:
    """Take a queued seed group for this worker: its experiment's id, or None if not queued."""
    with session_scope(settings.resolved_database_url) as session:
        return lifecycle.claim(session, group_id, WORKER_ID)


def load(
    settings: Settings, group_id: uuid.UUID
) -> tuple[ExperimentSpec, RunIds, dict[str, Any] | None]:
    """The spec narrowed to the group's seeds, the group's run ids by (variant, seed), and the
    checkpoint to resume from if any."""
    with session_scope(settings.resolved_database_url) as session:
        group = session.get_one(SeedGroup, group_id)
        spec = ExperimentSpec.model_validate(group.experiment.spec)
        runs = {(r.variant, r.seed): r.id for r in group.runs}
        seeds = list(group.seeds)
        blob = group.checkpoint
    training = spec.training.model_copy(update={"seeds": seeds})
    resume = torch.load(io.BytesIO(blob), weights_only=True) if blob else None
    return spec.model_copy(update={"training": training}), runs, resume


def run_group(settings: Settings, group_id: uuid.UUID) -> Ending:
    """Claim, train and finish one seed group; returns how this delivery ended.

    Logs one timings line at the end (worker.timings): where this delivery spent its time.
    """
    timings = Timings()
    timings.mark("received")
    ending = _run_group(settings, group_id, timings)
    timings.mark("ended")
    log.info(timings.line(group_id, ending))
    return ending


def _run_group(settings: Settings, group_id: uuid.UUID, timings: Timings) -> Ending:
    with timings.phase("claim"):
        experiment_id = claim(settings, group_id)
    if experiment_id is None:
        log.info("seed group %s is not queued any more; nothing to do", group_id)
        return Ending.skipped
    set_current(group_id)
    try:
        with timings.phase("load"):
            spec, runs, resume = load(settings, group_id)
        if resume is not None:
            log.info("experiment %s resumes from its checkpoint", experiment_id)
        sink = DatabaseSink(settings, group_id, runs, WORKER_ID, timings)
        config = training_config(settings)
        timings.mark("train_start")
        try:
            with timings.phase("train"):
                result = train(spec, sink, device=spec.device, resume=resume, config=config)
        finally:
            sink.close()  # every row and checkpoint stored before the outcome is
    except Exception as exc:
        log.exception("experiment %s failed", experiment_id)
        return fail(settings, group_id, exc)
    finally:
        set_current(None)
    if sink.lost:
        log.warning("experiment %s was given to another worker; this one let go", experiment_id)
        return Ending.lost
    if sink.interrupted:
        return hand_back(settings, group_id)
    try:
        with timings.phase("finish"):
            return finish(settings, group_id, runs, result, sink.cancelled)
    except Exception as exc:
        # A bug in storing the outcome must not leave the group running until it goes stale.
        log.exception("experiment %s: its outcome could not be stored", experiment_id)
        return fail(settings, group_id, exc)


def finish(
    settings: Settings, group_id: uuid.UUID, runs: RunIds, result: TrainResult, cancelled: bool
) -> Ending:
    """Store each run's outcome and the experiment's final status."""
    outcomes = [
        lifecycle.RunOutcome(
            run_id=runs[(run.variant, run.seed)],
            status=run.status,
            diverged_step=run.diverged_step,
            summary=run.summary,
        )
        for run in result.runs
    ]
    with session_scope(settings.resolved_database_url) as session:
        status = lifecycle.finish(
            session, group_id, WORKER_ID, cancelled, outcomes, device=result.device
        )
    return Ending.lost if status is None else Ending(status)


def hand_back(settings: Settings, group_id: uuid.UUID) -> Ending:
    """The worker is shutting down with the checkpoint stored: give the group back."""
    with session_scope(settings.resolved_database_url) as session:
        given = lifecycle.hand_back(session, group_id, WORKER_ID)
    return {
        lifecycle.HandBack.requeued: Ending.requeued,
        lifecycle.HandBack.cancelled: Ending.cancelled,
        lifecycle.HandBack.not_held: Ending.lost,
    }[given]


def fail(settings: Settings, group_id: uuid.UUID, exc: BaseException) -> Ending:
    """Record a readable error; the worker itself carries on with the next task."""
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    with session_scope(settings.resolved_database_url) as session:
        failed = lifecycle.fail(session, group_id, WORKER_ID, detail)
    return Ending.failed if failed else Ending.lost
