"""The JSON Schema every submitted spec is validated with, for forms and clients to build on."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from shared.spec import ExperimentSpec

router = APIRouter(prefix="/api/v1/spec", tags=["spec"])


@cache
def spec_schema() -> dict[str, Any]:
    """ExperimentSpec's JSON Schema, made once."""
    return ExperimentSpec.model_json_schema()


@router.get("/schema", response_model=dict[str, Any])
def get_schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12): fields, types, ranges, choices and defaults.

    The API validates with the same model, plus the rules a schema cannot state (the model fits
    its input, the size caps, the data set is available), which come back as 422s.
    """
    return spec_schema()
