"""What the sweeps API sends and receives."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.schemas import ExperimentCreate, Spread
from shared.spec import Name

MAX_AXES = 8


class SweepCreate(BaseModel):
    """A sweep: a base experiment and the axes to vary it along, or a sweep preset."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(
        default=None, max_length=64, description="A sweep preset (GET /api/v1/sweep-presets)"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="With `preset`: deep-merged into its base's overrides"
    )
    name: Name | None = None
    base: ExperimentCreate | None = Field(
        default=None, description="A preset with overrides, or a full spec"
    )
    axes: dict[str, Any] | None = Field(
        default=None,
        max_length=MAX_AXES,
        description="Dotted path -> list of values; with method random also "
        "{'log_uniform': [low, high]}, {'uniform': [low, high]} or {'choice': [...]}",
    )
    method: Literal["grid", "random"] = "grid"
    samples: int | None = Field(default=None, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _one_source(self) -> SweepCreate:
        if self.preset is None and (self.base is None or self.axes is None):
            raise ValueError("send a base and axes, or a sweep preset")
        if self.preset is not None and self.base is not None:
            raise ValueError("a sweep preset brings its own base; send overrides instead")
        if self.preset is None and self.overrides:
            raise ValueError("overrides apply to a sweep preset; put them in base.overrides")
        if self.method == "random" and self.samples is None:
            raise ValueError("method random needs samples")
        return self


class SweepPointPublic(BaseModel):
    """One point of a sweep: its axis values and its experiment's state."""

    index: int
    values: dict[str, Any]
    experiment_id: uuid.UUID
    name: str
    status: str
    progress: float
    attempt: int
    worker: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    seconds_left: float | None


class SweepSummary(BaseModel):
    """A sweep as listed: what it varies and how far it has got."""

    id: uuid.UUID
    name: str
    preset: str | None
    base_preset: str | None
    method: str
    samples: int | None
    seed: int | None
    axes: dict[str, Any]
    created_at: datetime
    status: str
    progress: float
    started_at: datetime | None
    finished_at: datetime | None
    seconds_left: float | None
    point_count: int
    status_counts: dict[str, int]


class SweepPublic(SweepSummary):
    """A sweep with its base spec and every point."""

    base_spec: dict[str, Any]
    points: list[SweepPointPublic]


class SweepPage(BaseModel):
    items: list[SweepSummary]


class SweepPresetPublic(BaseModel):
    name: str
    description: str
    body: dict[str, Any]


class VariantAtPoint(BaseModel):
    """One variant at one point: its measures across seeds."""

    final: Spread
    early_train_loss: Spread
    final_train_loss: Spread
    per_seed: dict[str, float | None]
    diverged_seeds: list[int]
    trains: bool | None


class PointFindings(BaseModel):
    index: int
    values: dict[str, Any]
    experiment_id: uuid.UUID
    status: str
    variants: dict[str, VariantAtPoint]


class Divergence(BaseModel):
    index: int
    values: dict[str, Any]
    variant: str
    seed: int
    step: int | None


class BestValue(BaseModel):
    value: Any
    final: Spread


class PairOverValues(BaseModel):
    """Where b beats a in every seed, where a beats b in every seed, and where it is mixed."""

    a: str
    b: str
    b_better: list[dict[str, Any]]
    a_better: list[dict[str, Any]]
    mixed: list[dict[str, Any]]


class SweepFindings(BaseModel):
    sweep_id: uuid.UUID
    metric: str
    higher_is_better: bool
    trains_means: str
    axes: list[str]
    variants: list[str]
    points: list[PointFindings]
    diverged: list[Divergence]
    best: dict[str, dict[str, BestValue]]
    trains_up_to: dict[str, dict[str, Any]]
    pairs: list[PairOverValues]
    statements: list[str]
