"""Submit, list, inspect and cancel experiments."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api import finish_watch, reads, service, storage
from api.deps import CeleryDep, CurrentOwner, SessionDep, SettingsDep
from api.submission import resolve
from shared import deletion, results, retention
from shared.models import Experiment
from shared.schemas import (
    ErrorMessage,
    ExperimentCreate,
    ExperimentPage,
    ExperimentPublic,
    Findings,
)
from shared.status import ACTIVE, ExperimentStatus
from shared.waiting import served_queues, waiting_note

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])


def public(experiment: Experiment, served: set[str]) -> ExperimentPublic:
    """The API's view of an experiment; `served`: the queues live workers consume."""
    view = ExperimentPublic.model_validate(experiment)
    view.waiting = waiting_note(experiment, served)
    return view


def served(session: SessionDep, settings: SettingsDep) -> set[str]:
    return served_queues(session, settings.heartbeat_stale_s)


@router.post(
    "",
    response_model=ExperimentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {"description": "Invalid spec, unknown preset, missing data set, or over quota"},
        429: {"model": ErrorMessage, "description": "Over BNLAB_RATE_SUBMISSIONS_PER_MINUTE"},
    },
)
def submit_experiment(
    body: ExperimentCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    owner: CurrentOwner,
) -> ExperimentPublic:
    """Validate a spec (or a preset with overrides), store it, and queue it for training."""
    spec, preset = resolve(body, settings)
    found = storage.check_quota(session, spec, owner, settings)
    experiment = service.create_experiment(
        session, spec, preset, owner, settings.seeds_per_group, found.estimate
    )
    service.enqueue(celery, experiment)
    response.headers["Location"] = f"/api/v1/experiments/{experiment.id}"
    return public(experiment, served(session, settings))


@router.get("", response_model=ExperimentPage)
def list_experiments(
    session: SessionDep,
    settings: SettingsDep,
    owner: CurrentOwner,
    status_filter: Annotated[ExperimentStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ExperimentPage:
    """Experiments, newest first, optionally of one status; follow next_cursor for more."""
    items, next_cursor = service.list_experiments(session, owner, status_filter, limit, cursor)
    queues = served(session, settings)
    return ExperimentPage(items=[public(e, queues) for e in items], next_cursor=next_cursor)


@router.get("/{experiment_id}", response_model=ExperimentPublic, responses={404: {}})
def get_experiment(
    experiment_id: uuid.UUID, session: SessionDep, settings: SettingsDep, owner: CurrentOwner
) -> Response:
    """Status, progress, times, the normalised spec and the runs of one experiment."""
    return experiment_response(session, settings, experiment_id, owner)


def experiment_response(
    session: SessionDep, settings: SettingsDep, experiment_id: uuid.UUID, owner: str
) -> Response:
    """The experiment's JSON (reads.experiment_json), with what an unfinished one waits for."""
    body = reads.experiment_json(
        session, experiment_id, owner, lambda e: waiting_note(e, served(session, settings))
    )
    return Response(body, media_type="application/json")


# A waiting request is woken by word of a finish (api/finish_watch.py) and looks at the database
# at least this often besides, in case the word was missed.
WAIT_RECHECK_S = 1.0


@router.get(
    "/{experiment_id}/wait",
    operation_id="experiments-wait",
    response_model=ExperimentPublic,
    responses={404: {}},
)
async def wait_for_experiment(
    experiment_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    owner: CurrentOwner,
    timeout_s: Annotated[float, Query(gt=0, le=60)] = 30.0,
) -> Response:
    """The experiment as GET shows it, once it has finished or after timeout_s (then still
    queued or running): a client waits with one request instead of polling."""
    deadline = time.monotonic() + timeout_s
    watch = finish_watch.watch_for(settings.resolved_database_url)

    def look() -> Response | None:
        """The response once finished or out of time, else None: one trip to a thread."""
        # A new transaction each time: SQLite would keep showing the first one's snapshot.
        session.rollback()
        now = reads.experiment_status(session, experiment_id, owner)
        if now in ACTIVE and time.monotonic() < deadline:
            return None
        return experiment_response(session, settings, experiment_id, owner)

    while (response := await run_in_threadpool(look)) is None:
        await watch.wait(experiment_id, max(0.0, min(deadline - time.monotonic(), WAIT_RECHECK_S)))
    return response


@router.post(
    "/{experiment_id}/cancel", response_model=ExperimentPublic, responses={404: {}, 409: {}}
)
def cancel_experiment(
    experiment_id: uuid.UUID, session: SessionDep, settings: SettingsDep, owner: CurrentOwner
) -> ExperimentPublic:
    """Queued: never starts. Running: stops within a step and a flush. Finished: 409."""
    experiment = service.get_experiment(session, experiment_id, owner)
    return public(service.cancel_experiment(session, experiment), served(session, settings))


@router.delete(
    "/{experiment_id}",
    operation_id="experiments-delete",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {}, 409: {"description": "Queued or running: cancel it first"}},
)
def delete_experiment(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner
) -> Response:
    """Delete a finished experiment with its runs, metrics, histograms, curves and checkpoint."""
    deletion.delete_experiment(session, experiment_id, owner)
    session.commit()
    retention.give_back_space(session)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{experiment_id}/findings", response_model=Findings, responses={404: {}})
def get_findings(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner
) -> dict[str, Any]:
    """Each variant's measures with their spread across seeds, and each pair compared."""
    experiment = service.get_experiment(session, experiment_id, owner)
    if experiment.findings is not None:
        return experiment.findings
    return results.experiment_findings(session, experiment.runs)
