"""What the API sends and receives, apart from the spec itself (shared/spec.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.spec import ExperimentSpec
from shared.status import ExperimentStatus, RunStatus


class ExperimentCreate(BaseModel):
    """A submission: a full spec, or a preset name with overrides deep-merged into it."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(default=None, max_length=64)
    overrides: dict[str, Any] = Field(default_factory=dict)
    spec: ExperimentSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_spec(cls, data: Any) -> Any:
        # A body that is itself a spec (has "variants") is accepted as {"spec": body}.
        if isinstance(data, dict) and "variants" in data:
            return {"spec": data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ExperimentCreate:
        if (self.preset is None) == (self.spec is None):
            raise ValueError("send either a full spec or {'preset': NAME, 'overrides': {...}}")
        if self.spec is not None and self.overrides:
            raise ValueError("overrides apply to a preset only")
        return self


class Spread(BaseModel):
    """One measure across seeds: mean, standard deviation, min, max, and how many seeds had it."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int


class PairMeasure(BaseModel):
    """One measure of a pair, seed by seed: the differences b - a, and how often b is lower."""

    difference: Spread
    b_lower_in: int
    b_higher_in: int
    seeds: int


class PairFindings(BaseModel):
    """Variant b against variant a, over the seeds both ran."""

    a: str
    b: str
    measures: dict[str, PairMeasure]
    statements: list[str]


class Findings(BaseModel):
    """Each variant's measures with their spread across seeds, and every pair compared."""

    # Findings may grow (new probes, new measures): an unknown key is passed on, not dropped.
    model_config = ConfigDict(extra="allow")

    loss_threshold: float | None = Field(description="The train loss every run reached")
    early_window: list[int] = Field(description="The steps early_train_loss averages over")
    final_steps: int = Field(description="The last steps final_train_loss averages over")
    variants: dict[str, dict[str, Spread]] = Field(description="Variant -> measure -> spread")
    pairs: list[PairFindings]


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    variant: str
    seed: int
    status: RunStatus
    diverged_step: int | None
    summary: dict[str, int | float | None] = Field(
        description="final_train_loss, the last evaluation's metrics, steps"
    )
    worker: str | None = Field(default=None, description="the worker that trained it last")
    device: str | None = Field(default=None, description="cpu, or the CUDA device's name")


class SeedGroupPublic(BaseModel):
    """Some of the experiment's seeds, trained by one worker as a unit."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seeds: list[int]
    status: ExperimentStatus
    progress: float
    attempt: int
    worker: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class DatasetUsed(BaseModel):
    """The data set a worker really trained on, where from, and why if not the one asked for."""

    requested: str
    used: str
    source: str  # local | download | generated | shipped
    where: str | None  # the folder read, or the mirror that served the files
    reason: str | None  # why the spec's fallback stands in


class ExperimentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    preset: str | None
    status: ExperimentStatus
    progress: float
    attempt: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    queue: str
    spec: ExperimentSpec
    # Set by the worker once it has the data.
    dataset: DatasetUsed | None = None
    runs: list[RunPublic]
    groups: list[SeedGroupPublic]
    findings: Findings | None = None


class ExperimentPage(BaseModel):
    items: list[ExperimentPublic]
    next_cursor: str | None


class PresetPublic(BaseModel):
    name: str
    description: str
    spec: ExperimentSpec


class PlotIndex(BaseModel):
    """What an experiment's plots can be asked for."""

    experiment_id: uuid.UUID
    status: str
    task: str = Field(description="classification or regression")
    plots: dict[str, list[str]] = Field(description="Plot name -> its formats")
    seeds: list[int]
    variants: list[str]
    layers: list[str] = Field(description="Layers with activation captures (this seed)")
    default_layers: dict[str, str] = Field(description="Variant -> the layer shown by default")
    steps: list[int] = Field(description="Steps at which the default layers were captured")
    epochs: list[int] = Field(description="Evaluated epochs with a fit curve (regression)")


class Series(BaseModel):
    steps: list[int]
    values: list[float]


class MetricsPublic(BaseModel):
    run_id: uuid.UUID
    series: dict[str, Series]


class HistogramStats(BaseModel):
    """Summary statistics of one capture."""

    model_config = ConfigDict(extra="allow")

    count: int | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float | None] = Field(
        default_factory=dict, description="Percentile (0, 1, 5, ..., 100) -> value"
    )
    zero_fraction: float | None = Field(default=None, description="Share of exact zeros")
    drift: float | None = Field(
        default=None, description="Wasserstein-1 from the previous capture of the layer"
    )


class HistogramPublic(BaseModel):
    layer: str
    kind: str
    step: int
    edges: list[float]
    counts: list[int]
    stats: HistogramStats


class HistogramsPublic(BaseModel):
    run_id: uuid.UUID
    layers: list[str]
    histograms: list[HistogramPublic]


class CurvePublic(BaseModel):
    key: str
    step: int
    epoch: int
    x: list[float]
    y: list[float]


class CurvesPublic(BaseModel):
    run_id: uuid.UUID
    curves: list[CurvePublic]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ErrorMessage(BaseModel):
    """The body of every 4xx that is not a validation error."""

    detail: str


class SessionCreate(BaseModel):
    """Logging in: the API token to keep in the session cookie."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class SessionPublic(BaseModel):
    """Who the session acts for, and whether tokens are checked at all."""

    owner: str
    auth: bool
