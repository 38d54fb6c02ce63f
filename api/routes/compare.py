"""Several experiments' loss and evaluation curves overlaid on one plot."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from api import service
from api.deps import CurrentOwner, SessionDep
from api.plots import MEDIA_TYPES
from api.plots import compare as plot_compare
from api.plots.cache import cached_response
from api.plots.catalog import PLOTS
from api.plots.params import PlotParamError
from api.routes.plots import is_finished, responses, unprocessable

router = APIRouter(prefix="/api/v1/compare", tags=["plots"])

MAX_IDS = 12
FORMATS = ("png", "svg", "json")
IdsParam = Annotated[
    str,
    Query(
        max_length=MAX_IDS * 37,
        description="Comma-separated experiment ids (or repeat the parameter)",
    ),
]


def parse_ids(raw: list[str]) -> list[uuid.UUID]:
    """Unique experiment ids in the order given; a 422 for anything that is not one."""
    ids: list[uuid.UUID] = []
    for part in (p.strip() for item in raw for p in item.split(",")):
        if not part:
            continue
        try:
            parsed = uuid.UUID(part)
        except ValueError as exc:
            raise unprocessable(PlotParamError("ids", f"'{part}' is not an id", [])) from exc
        if parsed not in ids:
            ids.append(parsed)
    if not 1 <= len(ids) <= MAX_IDS:
        raise unprocessable(PlotParamError("ids", f"give 1 to {MAX_IDS} experiment ids", []))
    return ids


@router.get("/{name}.{fmt}", response_class=Response, responses=responses(FORMATS))
def compare_plot(
    name: Literal["loss", "eval"],
    fmt: Literal["png", "svg", "json"],
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
    ids: Annotated[list[str], Query(max_length=MAX_IDS, description="Experiment ids")],
    smooth: Annotated[int | None, Query(ge=1, le=10_000, description="Moving average")] = None,
) -> Response:
    """Train loss (`loss`) or evaluations (`eval`) of several experiments on one plot."""
    experiments = [service.get_experiment(session, i, owner) for i in parse_ids(ids)]
    finished = all(is_finished(e) for e in experiments)
    # Keyed by state too: see api.routes.plots.serve.
    key = ("compare", tuple(e.id for e in experiments), finished, name, fmt, smooth)

    def produce() -> tuple[bytes, str]:
        try:
            found = plot_compare.gather(session, experiments, name, smooth)
        except PlotParamError as exc:
            raise unprocessable(exc) from exc
        if fmt == "json":
            return json.dumps(found, allow_nan=False).encode(), MEDIA_TYPES["json"]
        return PLOTS[name].render(found, fmt), MEDIA_TYPES[fmt]

    return cached_response(request, key, finished, produce)
