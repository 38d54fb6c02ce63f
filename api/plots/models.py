"""The shapes of the plots' `.json` data (what build.py returns), for the OpenAPI document.

Numbers are `float | None`: the data is made JSON-safe by turning NaN and infinities into null.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

Numbers = list[float | None]


class PlotData(BaseModel):
    """What every plot's data starts with."""

    experiment_id: str
    variants: list[str] = Field(description="In the spec's order, which fixes their colours")


class Band(BaseModel):
    """Per step: the mean across seeds, and the min..max band."""

    steps: list[int]
    mean: Numbers
    min: Numbers
    max: Numbers


class LossSeries(Band):
    label: str
    seeds: list[int]


class LossData(PlotData):
    smooth: int
    series: list[LossSeries]


class DensityCurve(BaseModel):
    label: str
    layer: str
    x: Numbers
    density: Numbers


class ActivationPanel(BaseModel):
    step: int
    loss: dict[str, float | None] = Field(description="Variant -> its train loss at the step")
    curves: list[DensityCurve]


class ActivationsData(PlotData):
    seed: int
    layers: dict[str, str] = Field(description="Variant -> the layer shown")
    captured_steps: list[int]
    steps: list[int] = Field(description="The steps shown, one panel each")
    panels: list[ActivationPanel]


class DistributionSeries(BaseModel):
    label: str
    layer: str
    steps: list[int]
    quantiles: dict[str, Numbers] = Field(description="Percentile -> value per step")
    drift: Numbers


class DistributionsData(PlotData):
    seed: int
    quantile_keys: list[str]
    series: list[DistributionSeries]


class EvalSeries(BaseModel):
    label: str
    seeds: list[int]
    test_loss: Band
    test_accuracy: Band
    train: Band = Field(description="The train loss the gap is taken against")
    gap: Band


class EvalData(PlotData):
    task: str
    steps_per_epoch: int | None
    train_is: str
    series: list[EvalSeries]


class Points(BaseModel):
    x: Numbers
    y: Numbers


class FitCurve(Points):
    label: str
    step: int
    test_loss: float | None


class FitData(PlotData):
    seed: int
    epoch: int | None
    epochs: list[int]
    points: dict[str, Points] = Field(description="train_points and test_points")
    curves: list[FitCurve]


class CompareData(BaseModel):
    """Several experiments' series, labelled 'experiment/variant'."""

    experiment_ids: list[str]
    variants: list[str]
    title: str
    series: list[LossSeries] | list[EvalSeries]
    smooth: int | None = Field(default=None, description="loss only")
    task: str | None = Field(default=None, description="eval only")
    train_is: str | None = Field(default=None, description="eval only")
    steps_per_epoch: int | None = Field(default=None, description="eval only")
