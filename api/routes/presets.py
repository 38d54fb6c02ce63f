"""The named studies a user can start from."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from shared.presets import PRESETS
from shared.schemas import ErrorMessage, PresetPublic

router = APIRouter(prefix="/api/v1/presets", tags=["presets"])


@router.get("", response_model=list[PresetPublic])
def list_presets() -> list[PresetPublic]:
    """Every preset with a sentence on what it shows and its full spec."""
    return [
        PresetPublic(name=p.name, description=p.description, spec=p.spec) for p in PRESETS.values()
    ]


@router.get("/{name}", response_model=PresetPublic, responses={404: {"model": ErrorMessage}})
def get_preset(name: str) -> PresetPublic:
    """One preset by name."""
    preset = PRESETS.get(name)
    if preset is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no preset '{name}'; presets: {', '.join(PRESETS)}"
        )
    return PresetPublic(name=preset.name, description=preset.description, spec=preset.spec)
