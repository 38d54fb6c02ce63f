"""Per-run results: metric series, activation histograms, prediction curves."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import Field, StringConstraints
from sqlalchemy import select

from api import reads
from api.deps import CurrentOwner, SessionDep
from shared import results
from shared.models import Experiment, Run
from shared.schemas import (
    CurvePublic,
    CurvesPublic,
    HistogramPublic,
    HistogramsPublic,
    MetricsPublic,
)

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

KeyName = Annotated[str, Query(max_length=128)]
# Steps are 32-bit in the database; larger numbers would overflow SQLite's driver (a 500).
Step = Annotated[int, Field(ge=0, le=2**31 - 1)]
# No control characters: PostgreSQL refuses NUL in text, which would surface as a 500.
Text = Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]


def owned_run(session: SessionDep, run_id: uuid.UUID, owner: str) -> Run:
    """The run if its experiment belongs to `owner`, else 404."""
    run = session.scalar(
        select(Run).join(Experiment).where(Run.id == run_id, Experiment.owner == owner)
    )
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id}")
    return run


@router.get("/{run_id}/metrics", response_model=MetricsPublic, responses={404: {}})
def get_metrics(
    run_id: uuid.UUID,
    session: SessionDep,
    owner: CurrentOwner,
    key: Annotated[list[Text] | None, Query(max_length=32)] = None,
    since_step: Annotated[Step | None, Query()] = None,
) -> Response:
    """Series per metric key; poll with since_step to get only the new points."""
    body = reads.metrics_json(session, run_id, owner, key or (), since_step)
    return Response(body, media_type="application/json")


@router.get("/{run_id}/histograms", response_model=HistogramsPublic, responses={404: {}})
def get_histograms(
    run_id: uuid.UUID,
    session: SessionDep,
    owner: CurrentOwner,
    layer: Annotated[list[Text] | None, Query(max_length=64)] = None,
    step: Annotated[list[Step] | None, Query(max_length=1000)] = None,
    kind: Annotated[Text | None, Query(max_length=16)] = None,
) -> HistogramsPublic:
    """Activation (and weight/gradient) histograms, filterable by layer, step and kind."""
    run = owned_run(session, run_id, owner)
    rows = results.read_histograms(session, [run.id], layer or (), step or (), kind)
    return HistogramsPublic(
        run_id=run.id,
        layers=results.captured_layers(session, [run.id]),
        histograms=[
            HistogramPublic(
                layer=h.layer,
                kind=h.kind,
                step=h.step,
                edges=h.edges,
                counts=h.counts,
                stats=h.stats,
            )
            for h in rows
        ],
    )


@router.get("/{run_id}/curves", response_model=CurvesPublic, responses={404: {}})
def get_curves(
    run_id: uuid.UUID,
    session: SessionDep,
    owner: CurrentOwner,
    key: Annotated[Text | None, Query(max_length=64)] = None,
) -> CurvesPublic:
    """Sampled curves: a regression run's predictions per evaluation, and its data points."""
    run = owned_run(session, run_id, owner)
    rows = results.read_curves(session, [run.id], key)
    return CurvesPublic(
        run_id=run.id,
        curves=[CurvePublic(key=c.key, step=c.step, epoch=c.epoch, x=c.x, y=c.y) for c in rows],
    )
