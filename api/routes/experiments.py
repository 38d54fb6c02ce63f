"""Submit, list, inspect and cancel experiments."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from api import service
from api.deps import CeleryDep, CurrentOwner, SessionDep, SettingsDep
from api.submission import resolve
from shared import results
from shared.models import Experiment
from shared.schemas import ExperimentCreate, ExperimentPage, ExperimentPublic, Findings
from shared.status import ExperimentStatus

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])


def public(experiment: Experiment) -> ExperimentPublic:
    """The API's view of an experiment."""
    return ExperimentPublic.model_validate(experiment)


@router.post(
    "",
    response_model=ExperimentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "Invalid spec, unknown preset, or missing data set"}},
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
    experiment = service.create_experiment(session, spec, preset, owner, settings.seeds_per_group)
    service.enqueue(celery, experiment)
    response.headers["Location"] = f"/api/v1/experiments/{experiment.id}"
    return public(experiment)


@router.get("", response_model=ExperimentPage)
def list_experiments(
    session: SessionDep,
    owner: CurrentOwner,
    status_filter: Annotated[ExperimentStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ExperimentPage:
    """Experiments, newest first, optionally of one status; follow next_cursor for more."""
    items, next_cursor = service.list_experiments(session, owner, status_filter, limit, cursor)
    return ExperimentPage(items=[public(e) for e in items], next_cursor=next_cursor)


@router.get("/{experiment_id}", response_model=ExperimentPublic, responses={404: {}})
def get_experiment(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner
) -> ExperimentPublic:
    """Status, progress, times, the normalised spec and the runs of one experiment."""
    return public(service.get_experiment(session, experiment_id, owner))


@router.post(
    "/{experiment_id}/cancel", response_model=ExperimentPublic, responses={404: {}, 409: {}}
)
def cancel_experiment(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner
) -> ExperimentPublic:
    """Queued: never starts. Running: stops within a step and a flush. Finished: 409."""
    experiment = service.get_experiment(session, experiment_id, owner)
    return public(service.cancel_experiment(session, experiment))


@router.get("/{experiment_id}/findings", response_model=Findings, responses={404: {}})
def get_findings(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner
) -> dict[str, Any]:
    """Each variant's measures with their spread across seeds, and each pair compared."""
    experiment = service.get_experiment(session, experiment_id, owner)
    if experiment.findings is not None:
        return experiment.findings
    return results.experiment_findings(session, experiment.runs)
