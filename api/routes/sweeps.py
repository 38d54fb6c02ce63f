"""Submit, list, inspect and cancel sweeps, and read their findings across the points."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api import sweep_service
from api.deps import CeleryDep, CurrentOwner, SessionDep, SettingsDep
from api.plots import MEDIA_TYPES, sensitivity
from api.plots.cache import cached_response
from api.plots.params import PlotParamError
from api.plots.registry import to_bytes
from shared.errors import InvalidInput
from shared.groups import rolled_up
from shared.models import Experiment, Sweep, utcnow
from shared.schemas import ErrorMessage
from shared.status import ExperimentStatus
from shared.sweep_findings import METRICS, sweep_findings
from shared.sweep_presets import SWEEP_PRESETS
from shared.sweep_schemas import (
    SweepCreate,
    SweepFindings,
    SweepPage,
    SweepPointPublic,
    SweepPresetPublic,
    SweepPublic,
    SweepSummary,
)

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"])
presets_router = APIRouter(prefix="/api/v1/sweep-presets", tags=["sweeps"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such sweep"}
}


def unprocessable(exc: PlotParamError) -> HTTPException:
    """The 422 for a plot parameter, listing the values that exist."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=exc.detail())


def seconds_left(
    status_: ExperimentStatus, started: datetime | None, progress: float
) -> float | None:
    """At the pace so far: elapsed * (1 - p) / p, while running with some progress."""
    if status_ != ExperimentStatus.running or started is None or progress <= 0:
        return None
    elapsed = (utcnow() - started).total_seconds()
    return max(0.0, elapsed * (1 - progress) / progress)


def sweep_status(points: list[Experiment]) -> ExperimentStatus:
    """A sweep rolls up from its points as an experiment does from its seed groups."""
    return rolled_up(p.status for p in points)


def point(experiment: Experiment) -> SweepPointPublic:
    """One point as the API shows it."""
    return SweepPointPublic(
        index=experiment.sweep_index or 0,
        values=experiment.sweep_values or {},
        experiment_id=experiment.id,
        name=experiment.name,
        status=experiment.status,
        progress=experiment.progress,
        attempt=experiment.attempt,
        worker=next((g.worker for g in experiment.groups if g.worker), None),
        error=experiment.error,
        started_at=experiment.started_at,
        finished_at=experiment.finished_at,
        seconds_left=seconds_left(experiment.status, experiment.started_at, experiment.progress),
    )


def summary(sweep: Sweep) -> SweepSummary:
    """A sweep's settings and its progress over all points."""
    points = sweep.points
    state = sweep_status(points)
    progress = sum(p.progress for p in points) / len(points) if points else 0.0
    starts = [p.started_at for p in points if p.started_at is not None]
    ends = [p.finished_at for p in points if p.finished_at is not None]
    started = min(starts) if starts else None
    return SweepSummary(
        id=sweep.id,
        name=sweep.name,
        preset=sweep.preset,
        base_preset=sweep.base_preset,
        method=sweep.method,
        samples=sweep.samples,
        seed=sweep.seed,
        axes=sweep.axes,
        created_at=sweep.created_at,
        status=state,
        progress=progress,
        started_at=started,
        finished_at=max(ends) if state.finished and ends else None,
        seconds_left=seconds_left(state, started, progress),
        point_count=len(points),
        status_counts=dict(Counter(str(p.status) for p in points)),
    )


def public(sweep: Sweep) -> SweepPublic:
    """A sweep with its base spec and every point."""
    return SweepPublic(
        **summary(sweep).model_dump(),
        base_spec=sweep.base_spec,
        points=[point(p) for p in sweep.points],
    )


@router.post(
    "",
    response_model=SweepPublic,
    status_code=status.HTTP_201_CREATED,
    operation_id="sweeps-create",
    responses={
        422: {"description": "A bad axis, a point that is not a valid experiment, or over quota"}
    },
)
def create_sweep(
    body: SweepCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    owner: CurrentOwner,
) -> SweepPublic:
    """Expand the axes into points, validate every one, store them all and queue them."""
    plan = sweep_service.plan(body, settings)
    sweep = sweep_service.create_sweep(session, celery, plan, owner, settings)
    response.headers["Location"] = f"/api/v1/sweeps/{sweep.id}"
    return public(sweep)


@router.get("", response_model=SweepPage, operation_id="sweeps-list")
def list_sweeps(
    session: SessionDep,
    owner: CurrentOwner,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SweepPage:
    """The caller's sweeps, newest first, with their progress."""
    return SweepPage(items=[summary(s) for s in sweep_service.list_sweeps(session, owner, limit)])


@router.get(
    "/{sweep_id}", response_model=SweepPublic, operation_id="sweeps-get", responses=NOT_FOUND
)
def get_sweep(sweep_id: uuid.UUID, session: SessionDep, owner: CurrentOwner) -> SweepPublic:
    """The sweep's axes and base, and every point: axis values, status, progress, time left."""
    return public(sweep_service.get_sweep(session, sweep_id, owner))


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepPublic,
    operation_id="sweeps-cancel",
    responses=NOT_FOUND,
)
def cancel_sweep(sweep_id: uuid.UUID, session: SessionDep, owner: CurrentOwner) -> SweepPublic:
    """Cancel every point that has not finished; finished points keep their results."""
    sweep = sweep_service.get_sweep(session, sweep_id, owner)
    return public(sweep_service.cancel_sweep(session, sweep))


@router.get(
    "/{sweep_id}/findings",
    response_model=SweepFindings,
    operation_id="sweeps-findings",
    responses=NOT_FOUND,
)
def get_findings(
    sweep_id: uuid.UUID,
    session: SessionDep,
    owner: CurrentOwner,
    metric: Annotated[
        str | None, Query(max_length=64, description="Default: test_accuracy, else test_loss")
    ] = None,
) -> SweepFindings:
    """Per point and variant, the final metric and early loss across seeds; divergences; the
    best value of each axis per variant; where one variant beats another in every seed."""
    sweep = sweep_service.get_sweep(session, sweep_id, owner, runs=True)
    try:
        return sweep_findings(session, sweep, metric)
    except ValueError as exc:
        raise InvalidInput(("query", "metric"), str(exc)) from exc


@presets_router.get("", response_model=list[SweepPresetPublic], operation_id="sweep-presets-list")
def list_sweep_presets() -> list[SweepPresetPublic]:
    """The named sweeps: POST {"preset": NAME, "overrides": {...}} to /api/v1/sweeps."""
    return [
        SweepPresetPublic(name=p.name, description=p.description, body=p.body)
        for p in SWEEP_PRESETS.values()
    ]


@router.get(
    "/{sweep_id}/plots/sensitivity.{fmt}",
    response_class=Response,
    operation_id="sweeps-plot-sensitivity",
    responses={
        200: {
            "content": {MEDIA_TYPES[f]: {} for f in ("png", "svg", "json")},
            "description": "The plot, or with `.json` the data behind it",
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **NOT_FOUND,
        422: {"description": "An unknown metric or axis; lists what exists"},
    },
)
def sensitivity_plot(
    sweep_id: uuid.UUID,
    fmt: Literal["png", "svg", "json"],
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
    metric: Annotated[
        str | None, Query(max_length=64, description="Default: test_accuracy, else test_loss")
    ] = None,
    axis: Annotated[
        str | None, Query(max_length=200, description="Plot against this axis (lines)")
    ] = None,
) -> Response:
    """The final metric against an axis per variant (min..max across seeds, divergences
    marked; log x over a decade or more); with two axes, a heatmap per variant."""
    sweep = sweep_service.get_sweep(session, sweep_id, owner, runs=True)
    finished = sweep_status(sweep.points).finished
    key = ("sweep-plot", sweep.id, finished, fmt, metric, axis)

    def produce() -> tuple[bytes, str]:
        try:
            found = sensitivity.data(sweep_findings(session, sweep, metric), axis)
        except PlotParamError as exc:
            raise unprocessable(exc) from exc
        except ValueError as exc:
            raise unprocessable(PlotParamError("metric", str(exc), METRICS)) from exc
        if fmt == "json":
            return json.dumps(found, allow_nan=False).encode(), MEDIA_TYPES["json"]
        return to_bytes(sensitivity.draw(found), fmt), MEDIA_TYPES[fmt]

    return cached_response(request, key, finished, produce)
