"""The dashboard's pages and its own scripts and styles; none of it is in the OpenAPI schema."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from api import service
from api.deps import CurrentOwner, SessionDep
from shared.errors import NotFound

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC = Path(__file__).resolve().parent.parent / "static"
# Served by name from a fixed list: nothing outside api/static can be asked for.
ASSETS = {p.name: p for p in STATIC.iterdir() if p.suffix in (".js", ".css", ".svg")}
MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A rendered page; it is live data, so browsers must not keep it."""
    response = TEMPLATES.TemplateResponse(request, template, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/", response_class=HTMLResponse)
def experiments_page(request: Request) -> HTMLResponse:
    """Experiments, newest first, with progress and time left."""
    return page(request, "index.html", title="Experiments")


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(
    request: Request, experiment_id: str, session: SessionDep, owner: CurrentOwner
) -> HTMLResponse:
    """One experiment: spec, runs, findings and plots, live while it trains."""
    try:
        experiment = service.get_experiment(session, uuid.UUID(experiment_id), owner)
    except (ValueError, NotFound):
        # A person followed a stale or mistyped link: a page that says so, not a JSON body.
        missing = page(
            request, "missing.html", title="No such experiment", experiment_id=experiment_id
        )
        missing.status_code = status.HTTP_404_NOT_FOUND
        return missing
    return page(request, "experiment.html", title=experiment.name, experiment_id=str(experiment.id))


@router.get("/new", response_class=HTMLResponse)
def new_page(request: Request) -> HTMLResponse:
    """Start from a preset, edit its spec, submit."""
    return page(request, "new.html", title="New experiment")


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    """Two or more experiments' curves overlaid."""
    return page(request, "compare.html", title="Compare")


@router.get("/static/app/{name}")
def asset(name: str) -> FileResponse:
    """One of the dashboard's scripts or styles."""
    path = ASSETS.get(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no asset {name}")
    return FileResponse(path, media_type=MEDIA[path.suffix], headers={"Cache-Control": "no-cache"})
