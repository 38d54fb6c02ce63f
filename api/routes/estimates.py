"""What a submission would store, before it is made: the estimate behind the storage quota."""

from __future__ import annotations

from fastapi import APIRouter

from api import storage
from api.deps import CurrentOwner, SessionDep, SettingsDep
from api.storage import StorageUsage
from api.submission import resolve
from shared.schemas import ExperimentCreate

router = APIRouter(prefix="/api/v1/estimates", tags=["experiments"])


@router.post(
    "",
    operation_id="experiments-estimate",
    response_model=StorageUsage,
    responses={422: {"description": "Invalid spec or unknown preset"}},
)
def estimate_experiment(
    body: ExperimentCreate, session: SessionDep, settings: SettingsDep, owner: CurrentOwner
) -> StorageUsage:
    """What a submission would store, the owner's usage and quota; stores nothing."""
    spec, _ = resolve(body, settings)
    return StorageUsage(
        estimate=storage.estimate(spec),
        used_bytes=storage.usage(session, owner),
        quota_bytes=settings.storage_quota_bytes or None,
    )
