"""Liveness and readiness probes at the root, outside the versioned API."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from api.deps import CeleryDep, SessionDep
from shared.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, name="live")
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, name="ready", responses={503: {"model": Health}})
def readyz(session: SessionDep, celery: CeleryDep, response: Response) -> Health:
    """The database and the broker are reachable; 503 otherwise."""
    checks = {"database": "ok", "broker": "ok"}
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ready else "unavailable", checks=checks)
