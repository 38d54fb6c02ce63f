"""The fleet: every worker, what it trains, how fast, and how many experiments each queue holds."""

from __future__ import annotations

from celery import Celery
from fastapi import APIRouter

from api.deps import CeleryDep, CurrentOwner, SessionDep, SettingsDep
from shared.broker import QUEUES, queue_length
from shared.fleet import FleetPublic, read_workers

router = APIRouter(prefix="/api/v1/workers", tags=["workers"])


def queue_depths(celery: Celery) -> dict[str, int | None]:
    """Messages waiting per queue (None where the broker could not be asked)."""
    return {queue: queue_length(celery, queue) for queue in QUEUES}


@router.get("", response_model=FleetPublic, operation_id="workers-list")
def list_workers(
    session: SessionDep, owner: CurrentOwner, settings: SettingsDep, celery: CeleryDep
) -> FleetPublic:
    """Workers seen in the last hour (alive: within BNLAB_HEARTBEAT_STALE_S) and queue depths."""
    return FleetPublic(
        workers=read_workers(session, owner, settings.heartbeat_stale_s),
        queues=queue_depths(celery),
        alive_within_s=settings.heartbeat_stale_s,
    )
