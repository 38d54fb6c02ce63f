"""What the API sends and receives, apart from the spec itself (shared/spec.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.spec import ExperimentSpec


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


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    variant: str
    seed: int
    status: str
    diverged_step: int | None
    summary: dict[str, Any]


class ExperimentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    preset: str | None
    status: str
    progress: float
    attempt: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    queue: str
    spec: dict[str, Any]
    runs: list[RunPublic]
    findings: dict[str, Any] | None = None
    # What it will store once trained, estimated at submission (POST /api/v1/estimates: by kind).
    estimated_rows: int = 0
    estimated_bytes: int = 0


class ExperimentPage(BaseModel):
    items: list[ExperimentPublic]
    next_cursor: str | None


class PresetPublic(BaseModel):
    name: str
    description: str
    spec: dict[str, Any]


class Series(BaseModel):
    steps: list[int]
    values: list[float]


class MetricsPublic(BaseModel):
    run_id: uuid.UUID
    series: dict[str, Series]


class HistogramPublic(BaseModel):
    layer: str
    kind: str
    step: int
    edges: list[float]
    counts: list[int]
    stats: dict[str, Any]


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
