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
from shared.models import Experiment, Run, SeedGroup, utcnow
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


def queued(session: Session, seeds: list[int] | None = None, per_group: int = 1) -> uuid.UUID:
    """A committed, queued regression study, with `seeds` split into groups of `per_group`."""
    raw = PRESETS["seed-dropout"].spec_copy()
    raw["training"]["seeds"] = seeds or [0]
    spec = ExperimentSpec.model_validate(raw)
    experiment = lifecycle.create(session, spec, "seed-dropout", "alice", per_group)
    session.commit()
    return experiment.id


def reread(session: Session, experiment_id: uuid.UUID) -> Experiment:
    session.expire_all()
    return session.get_one(Experiment, experiment_id)


def group_of(session: Session, experiment_id: uuid.UUID, position: int = 0) -> SeedGroup:
    return reread(session, experiment_id).groups[position]


def only_group(session: Session, experiment_id: uuid.UUID) -> uuid.UUID:
    return group_of(session, experiment_id).id


def test_seeds_are_split_into_groups_with_their_runs(session: Session) -> None:
    experiment_id = queued(session, seeds=[0, 1, 2], per_group=2)
    experiment = reread(session, experiment_id)
    assert [g.seeds for g in experiment.groups] == [[0, 1], [2]]
    assert [sorted({r.seed for r in g.runs}) for g in experiment.groups] == [[0, 1], [2]]
    assert len(experiment.runs) == 3 * 3  # three seeds of three variants


def test_a_second_claim_is_refused(session: Session) -> None:
    experiment_id = queued(session)
    group_id = only_group(session, experiment_id)
    assert lifecycle.claim(session, group_id, ME) == experiment_id
    assert lifecycle.claim(session, group_id, OTHER) is None
    session.commit()
    experiment = reread(session, experiment_id)
    assert (experiment.status, experiment.attempt) == ("running", 1)
    assert (experiment.groups[0].worker, experiment.groups[0].attempt) == (ME, 1)
    assert {(run.status, run.worker) for run in experiment.runs} == {(RunStatus.running, ME)}


def test_writes_of_a_worker_that_lost_the_group_are_refused(session: Session) -> None:
    experiment_id = queued(session)
    group_id = only_group(session, experiment_id)
    lifecycle.claim(session, group_id, OTHER)
    session.commit()
    assert not lifecycle.stamp(session, group_id, ME, progress=0.5)
    assert not lifecycle.store_checkpoint(session, group_id, ME, b"state")
    assert lifecycle.finish(session, group_id, ME, cancelled=False, outcomes=[]) is None
    assert lifecycle.hand_back(session, group_id, ME) == lifecycle.HandBack.not_held
    assert not lifecycle.fail(session, group_id, ME, "boom")
    assert lifecycle.poll(session, group_id, ME) == (False, False)
    session.commit()
    experiment = reread(session, experiment_id)
    assert (experiment.status, experiment.progress, experiment.error) == ("running", 0.0, None)
    assert (experiment.groups[0].worker, experiment.groups[0].checkpoint) == (OTHER, None)


def test_hand_back_requeues_and_a_pending_cancel_ends_it(session: Session) -> None:
    first, second = queued(session), queued(session)
    for experiment_id in (first, second):
        lifecycle.claim(session, only_group(session, experiment_id), ME)
        lifecycle.stamp(session, only_group(session, experiment_id), ME, progress=0.4)
    lifecycle.request_cancel(session, session.get_one(Experiment, second))
    assert lifecycle.hand_back(session, only_group(session, first), ME) == "requeued"
    assert lifecycle.hand_back(session, only_group(session, second), ME) == "cancelled"
    session.commit()
    assert (reread(session, first).status, reread(session, first).progress) == ("queued", 0.4)
    assert group_of(session, first).worker is None
    assert reread(session, second).status == ExperimentStatus.cancelled


def test_cancel_of_queued_running_and_finished(session: Session) -> None:
    waiting, training = queued(session), queued(session)
    group_id = only_group(session, training)
    lifecycle.claim(session, group_id, ME)
    assert lifecycle.request_cancel(session, session.get_one(Experiment, waiting)) == "cancelled"
    assert lifecycle.request_cancel(session, session.get_one(Experiment, training)) == "running"
    assert lifecycle.poll(session, group_id, ME) == (True, True)
    assert lifecycle.finish(session, group_id, ME, cancelled=True, outcomes=[]) == "cancelled"
    session.commit()
    assert reread(session, training).status == ExperimentStatus.cancelled
    with pytest.raises(Conflict, match="already finished"):
        lifecycle.request_cancel(session, reread(session, training))
    assert {r.status for r in reread(session, waiting).runs} == {RunStatus.cancelled}


def test_finish_stores_outcomes_device_and_findings(session: Session) -> None:
    experiment_id = queued(session)
    group_id = only_group(session, experiment_id)
    lifecycle.claim(session, group_id, ME)
    outcomes = [
        lifecycle.RunOutcome(run.id, RunStatus.succeeded, None, {"final_train_loss": 0.5})
        for run in reread(session, experiment_id).runs
    ]
    assert lifecycle.finish(session, group_id, ME, False, outcomes, device="cpu") == "succeeded"
    session.commit()
    experiment = reread(session, experiment_id)
    assert (experiment.status, experiment.progress) == (ExperimentStatus.succeeded, 1.0)
    assert experiment.findings is not None and experiment.finished_at is not None
    assert {(r.status, r.device) for r in experiment.runs} == {(RunStatus.succeeded, "cpu")}


def test_the_experiment_rolls_up_from_its_groups(session: Session) -> None:
    experiment_id = queued(session, seeds=[0, 1, 2])
    first, second, third = (g.id for g in reread(session, experiment_id).groups)
    lifecycle.claim(session, first, ME)
    lifecycle.claim(session, second, OTHER)
    assert lifecycle.finish(session, first, ME, cancelled=False, outcomes=[]) == "succeeded"
    session.commit()
    experiment = reread(session, experiment_id)
    assert (experiment.status, experiment.finished_at) == ("running", None)
    assert experiment.progress == pytest.approx(1 / 3)
    assert lifecycle.fail(session, second, OTHER, "RuntimeError: boom")
    assert reread(session, experiment_id).status == "running", "the third group still waits"
    lifecycle.claim(session, third, ME)
    lifecycle.finish(session, third, ME, cancelled=False, outcomes=[])
    session.commit()
    experiment = reread(session, experiment_id)
    assert (experiment.status, experiment.error) == ("failed", "RuntimeError: boom")
    assert experiment.findings is not None and experiment.finished_at is not None


def test_stale_groups_are_requeued_then_failed(session: Session) -> None:
    experiment_id = queued(session)
    group_id = only_group(session, experiment_id)
    lifecycle.claim(session, group_id, ME)
    session.commit()
    future = utcnow() + timedelta(seconds=1)
    assert lifecycle.requeue_stale(session, future, max_losses=2) == [(str(group_id), "any")]
    assert reread(session, experiment_id).status == ExperimentStatus.queued
    assert lifecycle.claim(session, group_id, OTHER) == experiment_id
    assert lifecycle.requeue_stale(session, future, max_losses=2) == []
    session.commit()
    experiment = reread(session, experiment_id)
    assert (experiment.status, experiment.groups[0].worker_losses) == ("failed", 2)
    assert "lost 2 times" in (experiment.error or "")
    assert {run.status for run in experiment.runs} == {RunStatus.failed}


def test_unclaimed_are_sent_again_with_a_growing_gap(session: Session) -> None:
    experiment_id = queued(session)
    group_id = only_group(session, experiment_id)
    gap = timedelta(seconds=60)
    never_empty = lambda queue: False  # noqa: E731
    assert lifecycle.resend_unclaimed(session, gap, never_empty) == []
    session.query(SeedGroup).update({SeedGroup.enqueued_at: utcnow() - gap * 1.5})
    assert lifecycle.resend_unclaimed(session, gap, never_empty) == [(str(group_id), "any")]
    # Sent twice now: the next send waits two gaps, unless the broker lost every message.
    session.query(SeedGroup).update({SeedGroup.enqueued_at: utcnow() - gap * 1.5})
    assert lifecycle.resend_unclaimed(session, gap, never_empty) == []
    assert lifecycle.resend_unclaimed(session, gap, lambda queue: True) == [(str(group_id), "any")]
    session.commit()
    assert group_of(session, experiment_id).enqueue_count == 3


def test_cancel_without_a_live_worker_is_settled(session: Session) -> None:
    experiment_id = queued(session)
    group_id = only_group(session, experiment_id)
    lifecycle.claim(session, group_id, ME)
    lifecycle.request_cancel(session, session.get_one(Experiment, experiment_id))
    session.commit()
    assert lifecycle.close_cancelled(session, utcnow() - timedelta(seconds=60)) == []
    assert lifecycle.close_cancelled(session, utcnow() + timedelta(seconds=1)) == [group_id]
    session.commit()
    experiment = reread(session, experiment_id)
    assert (experiment.status, experiment.groups[0].worker) == ("cancelled", None)
    assert session.query(Run).filter(Run.status != RunStatus.cancelled).count() == 0


def test_a_group_whose_step_stops_advancing_is_requeued_as_a_loss(session: Session) -> None:
    experiment_id = queued(session)
    group_id = only_group(session, experiment_id)
    lifecycle.claim(session, group_id, ME)
    assert lifecycle.stamp(session, group_id, ME, step=5, slowest_step_s=0.5)
    session.commit()
    advanced_at = group_of(session, experiment_id).step_at
    # Beats that report the same step keep the heartbeat fresh but not the step.
    assert lifecycle.stamp(session, group_id, ME, step=5)
    session.commit()
    group = group_of(session, experiment_id)
    assert (group.step, group.step_at, group.slowest_step_s) == (5, advanced_at, 0.5)
    assert group.heartbeat_at is not None and advanced_at is not None
    assert group.heartbeat_at > advanced_at
    # Within its limit, nothing happens; past it, the group goes back to the queue as a loss.
    assert lifecycle.requeue_stalled(session, lambda slowest, training: 3600.0, max_losses=3) == []
    past = lifecycle.requeue_stalled(session, lambda slowest, training: 0.0, max_losses=3)
    assert past == [(str(group_id), "any")]
    session.commit()
    group = group_of(session, experiment_id)
    assert (group.status, group.worker, group.worker_losses) == ("queued", None, 1)
    # The stuck worker, when it wakes, finds every write refused.
    assert not lifecycle.stamp(session, group_id, ME, step=6)
    assert lifecycle.poll(session, group_id, ME) == (False, False)
    # A new claim counts as an advance: the new worker is not taken for stuck at once.
    assert lifecycle.claim(session, group_id, OTHER) == experiment_id
    assert group_of(session, experiment_id).step is None, "no step of this attempt yet"
    loading = lambda slowest, training: 0.0 if training else 60.0  # noqa: E731
    assert lifecycle.requeue_stalled(session, loading, max_losses=3) == []


def test_a_cancel_that_waited_for_the_finish_does_not_undo_it(
    pg_databases: PostgresDatabases,
) -> None:
    # The API loads the experiment and its groups (running), then waits for the row lock while
    # the worker's finish (cancelled) commits: it must see the finish, not roll "running" back.
    url = pg_databases.create()
    upgrade_and_diff(url)
    engine = make_engine(url)
    make = sessionmaker(engine, expire_on_commit=False)
    with make() as worker, make() as api:
        experiment_id = queued(worker)
        group_id = only_group(worker, experiment_id)
        lifecycle.claim(worker, group_id, ME)
        worker.commit()
        loaded = api.get_one(Experiment, experiment_id)
        assert [g.status for g in loaded.groups] == [ExperimentStatus.running]
        lifecycle.request_cancel(api, loaded)  # the first cancel: the worker is told
        api.commit()
        assert lifecycle.finish(worker, group_id, ME, cancelled=True, outcomes=[]) == "cancelled"
        worker.commit()
        with pytest.raises(Conflict, match="already finished"):  # the second cancel, stale
            lifecycle.request_cancel(api, loaded)
        api.rollback()
        assert reread(api, experiment_id).status == ExperimentStatus.cancelled
    engine.dispose()
