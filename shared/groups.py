"""How an experiment is split into seed groups, and how its state is rolled up from theirs.

A seed group is the unit of work: some of an experiment's seeds with all its variants, which one
worker claims, trains in lockstep, checkpoints and finishes. The experiment's own status,
progress, attempt and times follow from its groups' (shared.lifecycle calls roll_up after every
group transition, holding the experiment's row lock).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared import finish_signal, results
from shared.models import Experiment, Run, SeedGroup, utcnow
from shared.spec import ExperimentSpec
from shared.status import ExperimentStatus

log = logging.getLogger(__name__)


def build_groups(
    spec: ExperimentSpec, seeds_per_group: int, enqueued_at: datetime
) -> Iterator[SeedGroup]:
    """Queued groups of `seeds_per_group` seeds each, in seed order, with their queued runs."""
    seeds = spec.training.seeds
    position = 0
    for start in range(0, len(seeds), seeds_per_group):
        group = SeedGroup(
            id=uuid.uuid4(),
            position=start // seeds_per_group,
            seeds=list(seeds[start : start + seeds_per_group]),
            status=ExperimentStatus.queued,
            progress=0.0,
            attempt=0,
            enqueued_at=enqueued_at,
            enqueue_count=1,
            worker_losses=0,
        )
        for seed in group.seeds:
            for variant in spec.variants:
                group.runs.append(
                    Run(
                        id=uuid.uuid4(),
                        position=position,
                        variant=variant.name,
                        seed=seed,
                        summary={},
                    )
                )
                position += 1
        yield group


def rolled_up(statuses: Iterable[ExperimentStatus]) -> ExperimentStatus:
    """An experiment's status from its groups' (the rules the README states)."""
    statuses = list(statuses)
    if all(s == ExperimentStatus.queued for s in statuses):
        return ExperimentStatus.queued
    if any(not s.finished for s in statuses):
        return ExperimentStatus.running
    for outcome in (ExperimentStatus.failed, ExperimentStatus.cancelled):
        if outcome in statuses:
            return outcome
    return ExperimentStatus.succeeded


def roll_up(session: Session, experiment: Experiment) -> ExperimentStatus:
    """Bring the (locked) experiment's status, progress, attempt, times and error in line with
    its groups'; the findings are computed once, when it finishes."""
    groups = list(
        session.scalars(
            select(SeedGroup)
            .where(SeedGroup.experiment_id == experiment.id)
            .order_by(SeedGroup.position)
            .execution_options(populate_existing=True)  # as they are now, not as first loaded
        )
    )
    status = rolled_up(g.status for g in groups)
    started = [g.started_at for g in groups if g.started_at is not None]
    beats = [g.heartbeat_at for g in groups if g.heartbeat_at is not None]
    values: dict[str, Any] = {
        "status": status,
        "progress": sum(g.progress for g in groups) / max(len(groups), 1),
        "attempt": max((g.attempt for g in groups), default=0),
        "started_at": min(started, default=None),
        "heartbeat_at": max(beats, default=None),
        "error": next((g.error for g in groups if g.error), None),
        "finished_at": None,
    }
    if status.finished:
        values["finished_at"] = max(g.finished_at or utcnow() for g in groups)
        if not experiment.status.finished:
            session.flush()
            # In spec order, as the live findings see them: the pairs' order must not depend
            # on which group happened to finish last.
            runs = session.scalars(
                select(Run).where(Run.experiment_id == experiment.id).order_by(Run.position)
            ).all()
            values["findings"] = results.experiment_findings(session, runs)
            finish_signal.announce(session, experiment.id)
            log.info("experiment %s %s", experiment.id, status)
    session.execute(update(Experiment).where(Experiment.id == experiment.id).values(**values))
    return status
