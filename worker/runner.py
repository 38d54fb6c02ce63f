"""One experiment from claim to final status: the glue between the database and the core."""

from __future__ import annotations

import io
import logging
import traceback
import uuid
from typing import Any

import torch
from sqlalchemy import select, update

from shared import results
from shared.config import Settings
from shared.db import session_scope
from shared.models import Experiment, ExperimentStatus, Run, RunStatus, utcnow
from shared.spec import ExperimentSpec
from worker.config import training_config
from worker.db_sink import DatabaseSink
from worker.heartbeat import WORKER_ID, held_by_us, set_current
from worker.reaper import settle
from worker.training.loop import TrainResult, train

log = logging.getLogger(__name__)

# What a worker reports when the experiment was given to another worker while it trained.
LOST = "lost"


def claim(settings: Settings, experiment_id: uuid.UUID) -> bool:
    """Atomically move a queued experiment to running; False if another delivery got it."""
    now = utcnow()
    with session_scope(settings.resolved_database_url) as session:
        started = session.scalar(
            select(Experiment.started_at).where(Experiment.id == experiment_id)
        )
        claimed = session.execute(
            update(Experiment)
            .where(
                Experiment.id == experiment_id,
                Experiment.status == ExperimentStatus.queued,
                Experiment.cancel_requested.is_(False),
            )
            .values(
                status=ExperimentStatus.running,
                attempt=Experiment.attempt + 1,
                started_at=started or now,
                heartbeat_at=now,
                worker=WORKER_ID,
            )
        )
        if claimed.rowcount == 1:
            session.execute(
                update(Run)
                .where(Run.experiment_id == experiment_id)
                .values(status=RunStatus.running)
            )
        return claimed.rowcount == 1


def load(
    settings: Settings, experiment_id: uuid.UUID
) -> tuple[ExperimentSpec, dict[tuple[str, int], uuid.UUID], dict[str, Any] | None]:
    """The spec, the run ids by (variant, seed), and the checkpoint to resume from if any."""
    with session_scope(settings.resolved_database_url) as session:
        experiment = session.get_one(Experiment, experiment_id)
        spec = ExperimentSpec.model_validate(experiment.spec)
        runs = {(r.variant, r.seed): r.id for r in experiment.runs}
        blob = experiment.checkpoint
    resume = torch.load(io.BytesIO(blob), weights_only=True) if blob else None
    return spec, runs, resume


def run_experiment(settings: Settings, experiment_id: uuid.UUID) -> str:
    """Claim, train and finish one experiment; returns the status it ended in."""
    if not claim(settings, experiment_id):
        log.info("experiment %s is not queued any more; nothing to do", experiment_id)
        return "skipped"
    set_current(experiment_id)
    try:
        spec, runs, resume = load(settings, experiment_id)
        if resume is not None:
            log.info("experiment %s resumes from its checkpoint", experiment_id)
        sink = DatabaseSink(settings, experiment_id, runs)
        config = training_config(settings)
        result = train(spec, sink, device=spec.device, resume=resume, config=config)
    except Exception as exc:
        log.exception("experiment %s failed", experiment_id)
        fail(settings, experiment_id, exc)
        return ExperimentStatus.failed
    finally:
        set_current(None)
    if sink.lost:
        log.warning("experiment %s was given to another worker; this one let go", experiment_id)
        return LOST
    if sink.interrupted:
        return hand_back(settings, experiment_id)
    return finish(settings, experiment_id, runs, result, sink.cancelled)


def finish(
    settings: Settings,
    experiment_id: uuid.UUID,
    runs: dict[tuple[str, int], uuid.UUID],
    result: TrainResult,
    cancelled: bool,
) -> str:
    """Store each run's outcome and the experiment's final status."""
    status = ExperimentStatus.cancelled if cancelled else ExperimentStatus.succeeded
    with session_scope(settings.resolved_database_url) as session:
        # First, and only while this worker holds it: the row lock also orders us before the
        # reaper, which could otherwise give the experiment away while we write its outcome.
        ours = session.execute(
            update(Experiment)
            .where(*held_by_us(experiment_id))
            .values(status=status, finished_at=utcnow(), checkpoint=None)
        )
        if not ours.rowcount:
            log.warning("experiment %s was given to another worker; not finished", experiment_id)
            return LOST
        for outcome in result.runs:
            session.execute(
                update(Run)
                .where(Run.id == runs[(outcome.variant, outcome.seed)])
                .values(
                    status=outcome.status,
                    diverged_step=outcome.diverged_step,
                    summary=outcome.summary,
                )
            )
        session.flush()
        rows = session.scalars(select(Run).where(Run.experiment_id == experiment_id)).all()
        values: dict[str, Any] = {"findings": results.experiment_findings(session, rows)}
        if not cancelled:
            values["progress"] = 1.0
        session.execute(update(Experiment).where(Experiment.id == experiment_id).values(**values))
    log.info("experiment %s %s", experiment_id, status)
    return status


def hand_back(settings: Settings, experiment_id: uuid.UUID) -> str:
    """The worker is shutting down: the checkpoint is stored; queue the experiment again.

    Unless a cancel came in before training saw it: then the experiment ends cancelled here,
    since claim would refuse it and it would wait, queued, for ever.
    """
    with session_scope(settings.resolved_database_url) as session:
        cancel_pending = (
            *held_by_us(experiment_id),
            Experiment.status == ExperimentStatus.running,
            Experiment.cancel_requested.is_(True),
        )
        if settle(session, experiment_id, cancel_pending, ExperimentStatus.cancelled):
            log.info("experiment %s cancelled at shutdown", experiment_id)
            return ExperimentStatus.cancelled
        session.execute(
            update(Experiment)
            .where(*held_by_us(experiment_id), Experiment.status == ExperimentStatus.running)
            .values(
                status=ExperimentStatus.queued,
                worker=None,
                enqueued_at=utcnow(),
                enqueue_count=Experiment.enqueue_count + 1,
            )
        )
    log.info("experiment %s handed back at shutdown", experiment_id)
    return ExperimentStatus.queued


def fail(settings: Settings, experiment_id: uuid.UUID, exc: BaseException) -> None:
    """Record a readable error; the worker itself carries on with the next task."""
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    with session_scope(settings.resolved_database_url) as session:
        settle(
            session, experiment_id, held_by_us(experiment_id), ExperimentStatus.failed, error=detail
        )
