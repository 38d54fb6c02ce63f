"""The dashboard's sweep pages: the list with a form to start one, and one sweep's page."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse

from api import sweep_service
from api.deps import CurrentOwner, SessionDep
from api.pages.routes import page
from shared.errors import NotFound

router = APIRouter(include_in_schema=False)


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request) -> HTMLResponse:
    """Sweeps, newest first, and a form to start one from a preset."""
    return page(request, "sweeps.html", title="Sweeps")


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(
    request: Request, sweep_id: str, session: SessionDep, owner: CurrentOwner
) -> HTMLResponse:
    """One sweep: its points live, the sensitivity plot and the findings."""
    try:
        sweep = sweep_service.get_sweep(session, uuid.UUID(sweep_id), owner)
    except (ValueError, NotFound):
        missing = page(request, "sweep_missing.html", title="No such sweep", sweep_id=sweep_id)
        missing.status_code = status.HTTP_404_NOT_FOUND
        return missing
    return page(request, "sweep.html", title=sweep.name, sweep_id=str(sweep.id))
