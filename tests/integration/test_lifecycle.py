"""Every transition of shared.lifecycle, on PostgreSQL and on the embedded SQLite database.

Each is a conditional UPDATE: these tests race the losing side of each transition and check
that it is refused, and that nothing about the experiment changed when it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared import lifecycle
from shared.db import make_engine
from shared.errors import Conflict
from shared.models import Experiment, Run, utcnow
from shared.presets import PRESETS
from shared.spec import ExperimentSpec
from shared.status import ExperimentStatus, RunStatus
from tests.integration.conftest import PostgresDatabases
from tests.migration_check import upgrade_and_diff

pytestmark = pytest.mark.integration

ME, OTHER = "host:1", "host:2"


@pytest.fixture(params=["postgres", "sqlite"])
def session(
    request: pytest.FixtureRequest, pg_databases: PostgresDatabases, tmp_path: Path
) -> Iterator[Session]:
    """A session on a freshly migrated database of each kind."""
    url = pg_databases.create() if request.param == "postgres" else f"sqlite:///{tmp_path}/l.db"
    upgrade_and_diff(url)
    engine = make_engine(url)
    with sessionmaker(engine, expire_on_commit=False)() as session:
        yield session
    engine.dispose()


def queued(session: Session) -> uuid.UUID:
    """A committed, queued seed study."""
    spec = ExperimentSpec.model_validate(PRESETS["seed-dropout"].spec_copy())
    experiment = lifecycle.create(session, spec, "seed-dropout", "alice")
    session.commit()
    return experiment.id


def status_of(session: Session, experiment_id: uuid.UUID) -> Experiment:
    session.expire_all()
    return session.get_one(Experiment, experiment_id)


def test_a_second_claim_is_refused(session: Session) -> None:
    experiment_id = queued(session)
    assert lifecycle.claim(session, experiment_id, ME)
    assert not lifecycle.claim(session, experiment_id, OTHER)
    session.commit()
    experiment = status_of(session, experiment_id)
    assert (experiment.status, experiment.worker, experiment.attempt) == ("running", ME, 1)
    assert {run.status for run in experiment.runs} == {RunStatus.running}


def test_writes_of_a_worker_that_lost_the_experiment_are_refused(session: Session) -> None:
    experiment_id = queued(session)
    lifecycle.claim(session, experiment_id, OTHER)
    session.commit()
    assert not lifecycle.stamp(session, experiment_id, ME, progress=0.5)
    assert not lifecycle.store_checkpoint(session, experiment_id, ME, b"state")
    assert lifecycle.finish(session, experiment_id, ME, cancelled=False, outcomes=[]) is None
    assert lifecycle.hand_back(session, experiment_id, ME) == lifecycle.HandBack.not_held
    assert not lifecycle.fail(session, experiment_id, ME, "boom")
    assert lifecycle.poll(session, experiment_id, ME) == (False, False)
    session.commit()
    experiment = status_of(session, experiment_id)
    assert (experiment.status, experiment.worker, experiment.progress) == ("running", OTHER, 0.0)
    assert experiment.checkpoint is None and experiment.error is None


def test_hand_back_requeues_and_a_pending_cancel_ends_it(session: Session) -> None:
    first, second = queued(session), queued(session)
    for experiment_id in (first, second):
        lifecycle.claim(session, experiment_id, ME)
    lifecycle.request_cancel(session, session.get_one(Experiment, second))
    assert lifecycle.hand_back(session, first, ME) == lifecycle.HandBack.requeued
    assert lifecycle.hand_back(session, second, ME) == lifecycle.HandBack.cancelled
    session.commit()
    assert status_of(session, first).status == ExperimentStatus.queued
    assert status_of(session, first).worker is None
    assert status_of(session, second).status == ExperimentStatus.cancelled


def test_cancel_of_queued_running_and_finished(session: Session) -> None:
    waiting, training = queued(session), queued(session)
    lifecycle.claim(session, training, ME)
    assert lifecycle.request_cancel(session, session.get_one(Experiment, waiting)) == "cancelled"
    assert lifecycle.request_cancel(session, session.get_one(Experiment, training)) == "running"
    assert lifecycle.poll(session, training, ME) == (True, True)
    assert lifecycle.finish(session, training, ME, cancelled=True, outcomes=[]) == "cancelled"
    session.commit()
    with pytest.raises(Conflict, match="already finished"):
        lifecycle.request_cancel(session, status_of(session, training))
    assert {r.status for r in status_of(session, waiting).runs} == {RunStatus.cancelled}


def test_finish_stores_outcomes_and_findings(session: Session) -> None:
    experiment_id = queued(session)
    lifecycle.claim(session, experiment_id, ME)
    runs = status_of(session, experiment_id).runs
    outcomes = [
        lifecycle.RunOutcome(run.id, RunStatus.succeeded, None, {"final_train_loss": 0.5})
        for run in runs
    ]
    assert lifecycle.finish(session, experiment_id, ME, False, outcomes) == "succeeded"
    session.commit()
    experiment = status_of(session, experiment_id)
    assert (experiment.status, experiment.progress) == (ExperimentStatus.succeeded, 1.0)
    assert experiment.findings is not None and experiment.finished_at is not None
    assert {run.status for run in experiment.runs} == {RunStatus.succeeded}


def test_stale_experiments_are_requeued_then_failed(session: Session) -> None:
    experiment_id = queued(session)
    lifecycle.claim(session, experiment_id, ME)
    session.commit()
    future = utcnow() + timedelta(seconds=1)
    assert lifecycle.requeue_stale(session, future, max_losses=2) == [(str(experiment_id), "any")]
    assert lifecycle.claim(session, experiment_id, OTHER)
    assert lifecycle.requeue_stale(session, future, max_losses=2) == []
    session.commit()
    experiment = status_of(session, experiment_id)
    assert (experiment.status, experiment.worker_losses) == (ExperimentStatus.failed, 2)
    assert "lost 2 times" in (experiment.error or "")
    assert {run.status for run in experiment.runs} == {RunStatus.failed}


def test_unclaimed_are_sent_again_with_a_growing_gap(session: Session) -> None:
    experiment_id = queued(session)
    gap = timedelta(seconds=60)
    never_empty = lambda queue: False  # noqa: E731
    assert lifecycle.resend_unclaimed(session, gap, never_empty) == []
    session.query(Experiment).update({Experiment.enqueued_at: utcnow() - gap * 1.5})
    assert lifecycle.resend_unclaimed(session, gap, never_empty) == [(str(experiment_id), "any")]
    # Sent twice now: the next send waits two gaps, unless the broker lost every message.
    session.query(Experiment).update({Experiment.enqueued_at: utcnow() - gap * 1.5})
    assert lifecycle.resend_unclaimed(session, gap, never_empty) == []
    assert lifecycle.resend_unclaimed(session, gap, lambda queue: True) == [
        (str(experiment_id), "any")
    ]
    session.commit()
    assert status_of(session, experiment_id).enqueue_count == 3


def test_cancel_without_a_live_worker_is_settled(session: Session) -> None:
    experiment_id = queued(session)
    lifecycle.claim(session, experiment_id, ME)
    lifecycle.request_cancel(session, session.get_one(Experiment, experiment_id))
    session.commit()
    assert lifecycle.close_cancelled(session, utcnow() - timedelta(seconds=60)) == []
    assert lifecycle.close_cancelled(session, utcnow() + timedelta(seconds=1)) == [experiment_id]
    session.commit()
    experiment = status_of(session, experiment_id)
    assert (experiment.status, experiment.worker) == (ExperimentStatus.cancelled, None)
    assert session.query(Run).filter(Run.status != RunStatus.cancelled).count() == 0
