"""The FastAPI application: `uvicorn api.main:app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.docs import mount_docs
from api.routes import experiments, health, presets, runs
from shared.broker import make_celery
from shared.config import get_settings
from shared.logs import configure_logging

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.celery = make_celery(settings, "bnlab-api")
    log.info("database %s, broker %s", settings.resolved_database_url, settings.resolved_broker_url)
    yield


def create_app() -> FastAPI:
    """A new app with every router, the probes at the root and offline docs."""
    configure_logging()
    app = FastAPI(
        title="bnlab",
        summary="Train batch-norm and dropout experiments in lockstep; read their curves back.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    for module in (health, presets, experiments, runs):
        app.include_router(module.router)
    mount_docs(app)
    return app


app = create_app()
