"""An experiment's plots, rendered on the server from the database: PNG, SVG, GIF, or the data.

One route per plot of api/plots/catalog.py, made by `add_plot_route`; nothing here names a plot.
"""

# No `from __future__ import annotations`: the endpoints' annotations are built per plot below
# (its formats, its parameter model) and FastAPI must see the objects, not their names.

import json
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api import service
from api.deps import CurrentOwner, SessionDep
from api.plots import MEDIA_TYPES, catalog
from api.plots.cache import cached_response
from api.plots.params import PlotParamError
from api.plots.registry import Plot
from shared.models import Experiment
from shared.schemas import PlotIndex

router = APIRouter(prefix="/api/v1/experiments/{experiment_id}/plots", tags=["plots"])

SeedParam = Annotated[int | None, Query(ge=0, description="Which seed's runs; default the first")]


def responses(formats: Sequence[str]) -> dict[int | str, dict[str, Any]]:
    """The answers of a plot route serving `formats`."""
    return {
        200: {
            "content": {MEDIA_TYPES[fmt]: {} for fmt in formats},
            "description": "The plot, or with `.json` the data behind it",
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        404: {"description": "No such experiment"},
        422: {"description": "A parameter names something that does not exist; lists what does"},
    }


def is_finished(experiment: Experiment) -> bool:
    """Whether the experiment's results can no longer change."""
    return experiment.status.finished


def unprocessable(exc: PlotParamError) -> HTTPException:
    """The 422 for a plot parameter, listing the values that exist."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=exc.detail())


def serve(
    request: Request,
    session: Session,
    owner: str,
    experiment_id: uuid.UUID,
    plot: Plot[Any],
    fmt: str,
    params: BaseModel,
) -> Response:
    """`plot` of the owner's experiment in `fmt`, through the cache."""
    experiment = service.get_experiment(session, experiment_id, owner)
    finished = is_finished(experiment)
    # The state is part of the key: a render made while training (and cached for a second)
    # must never answer for the finished experiment, which clients may then keep for an hour.
    values = tuple(sorted(params.model_dump().items()))
    key = ("plot", experiment.id, finished, plot.name, fmt, values)

    def produce() -> tuple[bytes, str]:
        try:
            found = catalog.gather(session, experiment, plot, params, fmt)
        except PlotParamError as exc:
            raise unprocessable(exc) from exc
        if fmt == "json":
            return json.dumps(found, allow_nan=False).encode(), MEDIA_TYPES["json"]
        return plot.render(found, fmt), MEDIA_TYPES[fmt]

    return cached_response(request, key, finished, produce)


@router.get("", response_model=PlotIndex, responses={404: {}})
def plot_index(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner, seed: SeedParam = None
) -> dict[str, Any]:
    """Which plots apply and in which formats, and the layers, steps and epochs to ask for."""
    experiment = service.get_experiment(session, experiment_id, owner)
    try:
        return catalog.index(session, experiment, seed)
    except PlotParamError as exc:
        raise unprocessable(exc) from exc


def add_plot_route(router: APIRouter, plot: Plot[Any]) -> None:
    """GET `{name}.{fmt}`: the plot's formats as the path's choices, its model as the query."""
    Format = Literal[plot.formats]  # type: ignore[valid-type,name-defined]
    Params = Annotated[plot.params, Query()]  # type: ignore[name-defined]

    def endpoint(
        experiment_id: uuid.UUID,
        fmt: Format,
        request: Request,
        session: SessionDep,
        owner: CurrentOwner,
        params: Params,
    ) -> Response:
        return serve(request, session, owner, experiment_id, plot, fmt, params)

    router.add_api_route(
        f"/{plot.name}.{{fmt}}",
        endpoint,
        methods=["GET"],
        name=plot.name,
        summary=f"{plot.name.capitalize()} plot",
        description=plot.summary,
        response_class=Response,
        responses=responses(plot.formats),
    )


for _plot in catalog.PLOTS.values():
    add_plot_route(router, _plot)


@router.get("/{filename}", include_in_schema=False)
def unknown_plot(
    experiment_id: uuid.UUID, filename: str, session: SessionDep, owner: CurrentOwner
) -> Response:
    """Any other name: a 422 listing the plots and their formats."""
    service.get_experiment(session, experiment_id, owner)
    listed = [f"{p.name}.{fmt}" for p in catalog.PLOTS.values() for fmt in p.formats]
    raise unprocessable(PlotParamError("name", f"no plot '{filename}'", listed))
