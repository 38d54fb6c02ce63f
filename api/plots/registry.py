"""What a plot is: one declaration, from which its route, index entry and OpenAPI operation follow.

Adding a plot is one `Plot(...)` in `api/plots/catalog.py` (PLOTS), next to its two functions:

- data: `(session, src, params, fmt) -> dict`, the JSON-ready data (also served as `.json`); it
  reads through shared/plot_queries.py or shared/results.py and shapes with api/plots/build.py,
  and raises `PlotParamError` for a parameter naming something that was never stored (a 422
  listing what exists);
- draw: `(data) -> matplotlib Figure` (no pyplot), used for png and svg; `animate: (data) ->
  bytes` as well if "gif" is among the formats.

    Plot(
        name="loss",                            # GET .../plots/loss.{fmt}, operation plots-loss
        summary="Train loss per step of every variant; mean and min..max band across seeds.",
        formats=("png", "svg", "json"),
        params=LossParams,                      # a pydantic model: its fields are the query
        data=loss_data,                         # parameters, constraints and descriptions
        draw=draw_training.loss,                # included (NoParams: none)
        tasks=("regression",),                  # only for these data set tasks (default: all)
    )

The route (api/routes/plots.py), the plots index, the cache and ETag handling, the 404 and 422
answers and the OpenAPI document then follow; nothing else needs an edit.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict

from api.plots import MEDIA_TYPES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from api.plots.data import Source

P = TypeVar("P", bound=BaseModel)
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class NoParams(BaseModel):
    """A plot without query parameters."""

    model_config = ConfigDict(frozen=True)


def to_bytes(fig: Figure, fmt: str) -> bytes:
    """Encode a figure; SVGs drop their date so a re-render gives the same bytes."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else None
    fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


@dataclass(frozen=True)
class Plot(Generic[P]):
    """One plot of an experiment: how to get its data, how to draw it, what it accepts."""

    name: str
    summary: str
    formats: tuple[str, ...]
    params: type[P]
    data: Callable[[Session, Source, P, str], dict[str, Any]]
    draw: Callable[[dict[str, Any]], Figure]
    animate: Callable[[dict[str, Any]], bytes] | None = None
    tasks: tuple[str, ...] = ()
    # The spec's `probes` field (landscape, ics, ...) without which the plot has no data.
    probe: str | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"plot name '{self.name}' must match {NAME.pattern}")
        unknown = set(self.formats) - set(MEDIA_TYPES)
        if unknown or not self.formats:
            raise ValueError(f"plot '{self.name}': formats must be among {sorted(MEDIA_TYPES)}")
        if ("gif" in self.formats) != (self.animate is not None):
            raise ValueError(f"plot '{self.name}': a gif format needs animate, and only it")

    def applies(self, task: str) -> bool:
        """Whether an experiment of this task (classification, regression) has this plot."""
        return not self.tasks or task in self.tasks

    def render(self, data: dict[str, Any], fmt: str) -> bytes:
        """The data drawn as png or svg, or animated as gif."""
        if fmt == "gif" and self.animate is not None:
            return self.animate(data)
        return to_bytes(self.draw(data), fmt)
