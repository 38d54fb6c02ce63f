"""An experiment's plots, rendered on the server from the database: PNG, SVG, GIF, or the data."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy.orm import Session

from api import reads, service
from api.deps import CurrentOwner, SessionDep
from api.plots import FORMATS, MEDIA_TYPES
from api.plots import data as plot_data
from api.plots.cache import cached_response
from api.plots.params import PlotParamError
from api.plots.render import render
from shared.models import Experiment

router = APIRouter(prefix="/api/v1/experiments/{experiment_id}/plots", tags=["plots"])

Format = Literal["png", "svg", "json"]
LayerParam = Annotated[
    str | None,
    Query(
        max_length=128,
        description="A captured layer, for every variant; default: each variant's pre-activation "
        "(its BatchNorm output where BN precedes the activation) in the first hidden layer of an "
        "MLP, or in a CNN's first block where some variant has BatchNorm",
    ),
]
SeedParam = Annotated[int | None, Query(ge=0, description="Which seed's runs; default the first")]

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {media: {} for media in MEDIA_TYPES.values()},
        "description": "The plot, or with `.json` the data behind it",
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    404: {"description": "No such experiment"},
    422: {"description": "A parameter names something that does not exist; lists what does"},
}


def is_finished(experiment: Experiment) -> bool:
    """Whether the experiment's results can no longer change."""
    return experiment.status not in ("queued", "running")


def unprocessable(exc: PlotParamError) -> HTTPException:
    """The 422 for a plot parameter, listing the values that exist."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=exc.detail())


def serve(
    request: Request,
    session: Session,
    owner: str,
    experiment_id: uuid.UUID,
    name: str,
    fmt: str,
    params: dict[str, Any],
) -> Response:
    """Plot `name` of the owner's experiment in `fmt`, through the cache."""
    # Only the status before the cache is asked (one lookup); the rows only for a render.
    finished = reads.experiment_status(session, experiment_id, owner) not in reads.ACTIVE
    # The state is part of the key: a render made while training (and cached for a second)
    # must never answer for the finished experiment, which clients may then keep for an hour.
    key = ("plot", experiment_id, finished, name, fmt, tuple(sorted(params.items())))

    def produce() -> tuple[bytes, str]:
        experiment = service.get_experiment(session, experiment_id, owner)
        try:
            found = plot_data.gather(session, experiment, name, {**params, "frames": fmt == "gif"})
        except PlotParamError as exc:
            raise unprocessable(exc) from exc
        if fmt == "json":
            return json.dumps(found, allow_nan=False).encode(), MEDIA_TYPES["json"]
        return render(name, found, fmt), MEDIA_TYPES[fmt]

    return cached_response(request, key, finished, produce)


@router.get("", responses={404: {}})
def plot_index(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner, seed: SeedParam = None
) -> dict[str, Any]:
    """Which plots apply and in which formats, and the layers, steps and epochs to ask for."""
    experiment = service.get_experiment(session, experiment_id, owner)
    try:
        return plot_data.index(session, plot_data.Source.of(experiment), seed)
    except PlotParamError as exc:
        raise unprocessable(exc) from exc


@router.get("/loss.{fmt}", response_class=Response, responses=RESPONSES)
def loss_plot(
    experiment_id: uuid.UUID,
    fmt: Format,
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
    smooth: Annotated[int | None, Query(ge=1, le=10_000, description="Moving average")] = None,
) -> Response:
    """Train loss per step of every variant; mean and min..max band across seeds."""
    params = {"smooth": smooth}
    return serve(request, session, owner, experiment_id, "loss", fmt, params)


@router.get("/activations.{fmt}", response_class=Response, responses=RESPONSES)
def activations_plot(
    experiment_id: uuid.UUID,
    fmt: Literal["png", "svg", "json", "gif"],
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
    layer: LayerParam = None,
    step: Annotated[
        int | None, Query(ge=0, description="A captured step; default a grid over the steps")
    ] = None,
    seed: SeedParam = None,
) -> Response:
    """One layer's distribution per variant as overlaid densities; `.gif` animates the steps."""
    params = {"layer": layer, "step": None if fmt == "gif" else step, "seed": seed}
    return serve(request, session, owner, experiment_id, "activations", fmt, params)


@router.get("/distributions.{fmt}", response_class=Response, responses=RESPONSES)
def distributions_plot(
    experiment_id: uuid.UUID,
    fmt: Format,
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
    layer: LayerParam = None,
    seed: SeedParam = None,
) -> Response:
    """Quantile bands (0/5/25/50/75/95/100 %) of a layer over steps, and its drift per step."""
    params = {"layer": layer, "seed": seed}
    return serve(request, session, owner, experiment_id, "distributions", fmt, params)


@router.get("/eval.{fmt}", response_class=Response, responses=RESPONSES)
def eval_plot(
    experiment_id: uuid.UUID,
    fmt: Format,
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
) -> Response:
    """Test loss and accuracy per evaluation, and the train-test gap."""
    return serve(request, session, owner, experiment_id, "eval", fmt, {})


@router.get("/fit.{fmt}", response_class=Response, responses=RESPONSES)
def fit_plot(
    experiment_id: uuid.UUID,
    fmt: Format,
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
    epoch: Annotated[
        int | None, Query(ge=0, description="An evaluated epoch; default last")
    ] = None,
    seed: SeedParam = None,
) -> Response:
    """Regression: train and test points, and each variant's prediction curve at one epoch."""
    params = {"epoch": epoch, "seed": seed}
    return serve(request, session, owner, experiment_id, "fit", fmt, params)


@router.get("/{filename}", include_in_schema=False)
def unknown_plot(
    experiment_id: uuid.UUID, filename: str, session: SessionDep, owner: CurrentOwner
) -> Response:
    """Any other name: a 422 listing the plots and their formats."""
    service.get_experiment(session, experiment_id, owner)
    listed = [f"{name}.{fmt}" for name, formats in FORMATS.items() for fmt in formats]
    raise unprocessable(PlotParamError("name", f"no plot '{filename}'", listed))
