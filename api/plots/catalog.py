"""Every plot of an experiment, declared once (see api/plots/registry.py for how to add one)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.plots import build as b
from api.plots import data, draw_layers, draw_science, draw_training, science
from api.plots import params as checks
from api.plots.registry import NoParams, Plot
from shared.models import Experiment

LAYER_HELP = (
    "A captured layer, for every variant; default: each variant's pre-activation (its BatchNorm "
    "output where BN precedes the activation) in the first hidden layer of an MLP, or in a CNN's "
    "first block where some variant has BatchNorm"
)
Layer = Field(default=None, max_length=128, description=LAYER_HELP)
Seed = Field(default=None, ge=0, description="Which seed's runs; default the first")


class LossParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    smooth: int | None = Field(default=None, ge=1, le=10_000, description="Moving average")


class ActivationsParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    layer: str | None = Layer
    step: int | None = Field(
        default=None, ge=0, description="A captured step; default a grid over the steps"
    )
    seed: int | None = Seed


class DistributionsParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    layer: str | None = Layer
    seed: int | None = Seed


class FitParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    epoch: int | None = Field(default=None, ge=0, description="An evaluated epoch; default last")
    seed: int | None = Seed


def _loss(session: Session, src: data.Source, p: LossParams, fmt: str) -> dict[str, Any]:
    return data.loss(session, src, p.smooth)


def _activations(
    session: Session, src: data.Source, p: ActivationsParams, fmt: str
) -> dict[str, Any]:
    # The gif animates every captured step (up to its frame cap); `step` is for a single picture.
    if fmt == "gif":
        return data.activations(session, src, p.layer, None, p.seed, checks.MAX_FRAMES)
    return data.activations(session, src, p.layer, p.step, p.seed, checks.MAX_PANELS)


def _distributions(
    session: Session, src: data.Source, p: DistributionsParams, fmt: str
) -> dict[str, Any]:
    return data.distributions(session, src, p.layer, p.seed)


def _eval(session: Session, src: data.Source, p: NoParams, fmt: str) -> dict[str, Any]:
    return data.evaluation(session, src)


def _fit(session: Session, src: data.Source, p: FitParams, fmt: str) -> dict[str, Any]:
    return data.fit(session, src, p.epoch, p.seed)


def _landscape(session: Session, src: data.Source, p: NoParams, fmt: str) -> dict[str, Any]:
    return science.landscape(session, src)


def _ics(session: Session, src: data.Source, p: NoParams, fmt: str) -> dict[str, Any]:
    return science.ics(session, src)


PLOTS: dict[str, Plot[Any]] = {
    plot.name: plot
    for plot in (
        Plot(
            name="loss",
            summary="Train loss per step of every variant; mean and min..max band across seeds.",
            formats=("png", "svg", "json"),
            params=LossParams,
            data=_loss,
            draw=draw_training.loss,
        ),
        Plot(
            name="activations",
            summary="One layer's distribution per variant as overlaid densities; "
            "`.gif` animates the steps.",
            formats=("png", "svg", "json", "gif"),
            params=ActivationsParams,
            data=_activations,
            draw=draw_layers.activations,
            animate=draw_layers.animation,
        ),
        Plot(
            name="distributions",
            summary="Quantile bands (0/5/25/50/75/95/100 %) of a layer over steps, "
            "and its drift per step.",
            formats=("png", "svg", "json"),
            params=DistributionsParams,
            data=_distributions,
            draw=draw_layers.distributions,
        ),
        Plot(
            name="eval",
            summary="Test loss and accuracy per evaluation, and the train-test gap.",
            formats=("png", "svg", "json"),
            params=NoParams,
            data=_eval,
            draw=draw_training.evaluation,
        ),
        Plot(
            name="fit",
            summary="Regression: train and test points, and each variant's prediction curve "
            "at one epoch.",
            formats=("png", "svg", "json"),
            params=FitParams,
            data=_fit,
            draw=draw_training.fit,
            tasks=("regression",),
        ),
        Plot(
            name="landscape",
            summary="Loss and gradient change along the gradient over the probe's step sizes "
            "(bands), and the effective beta-smoothness, per variant against training step.",
            formats=("png", "svg", "json"),
            params=NoParams,
            data=_landscape,
            draw=draw_science.landscape,
            probe="landscape",
        ),
        Plot(
            name="ics",
            summary="Internal covariate shift by the gradient definition: per layer, the l2 "
            "distance and cosine of its gradient before and after the layers below it move.",
            formats=("png", "svg", "json"),
            params=NoParams,
            data=_ics,
            draw=draw_science.ics,
            probe="ics",
        ),
    )
}


def _probed(src: data.Source, plot: Plot[Any]) -> bool:
    return plot.probe is None or getattr(src.spec.probes, plot.probe) is not None


def applicable(src: data.Source) -> list[str]:
    """The plots this experiment has (some need a regression data set)."""
    return [n for n, plot in PLOTS.items() if plot.applies(src.task) and _probed(src, plot)]


def gather(
    session: Session, experiment: Experiment, plot: Plot[Any], params: BaseModel, fmt: str
) -> dict[str, Any]:
    """The data behind `plot`, JSON-ready, with the experiment's variants (for colours)."""
    src = data.Source.of(experiment)
    if not plot.applies(src.task):
        needs = " or ".join(plot.tasks)
        message = f"{plot.name} plots need a {needs} data set, not {src.task}"
        raise checks.PlotParamError("name", message, applicable(src))
    if not _probed(src, plot):
        message = f"{plot.name} plots need probes.{plot.probe} in the spec"
        raise checks.PlotParamError("name", message, applicable(src))
    found = plot.data(session, src, params, fmt)
    return b.clean({"experiment_id": str(experiment.id), "variants": src.variants, **found})


def index(session: Session, experiment: Experiment, seed: int | None = None) -> dict[str, Any]:
    """What can be asked for: plots and formats, seeds, layers, captured steps, epochs."""
    src = data.Source.of(experiment)
    facts = data.index(session, src, seed)
    plots = {name: list(PLOTS[name].formats) for name in applicable(src)}
    return {**facts, "plots": plots}
