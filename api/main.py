"""The FastAPI application: `uvicorn api.main:app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from api import openapi
from api.auth import AuthMiddleware
from api.docs import mount_docs
from api.errors import domain_error, http_error, validation_error
from api.limits import BodyLimitMiddleware
from api.observability import RequestMetricsMiddleware
from api.observability import router as prometheus
from api.pages import routes as pages
from api.routes import (
    compare,
    experiments,
    exports,
    health,
    plots,
    presets,
    runs,
    session,
    workers,
)
from shared.broker import make_celery
from shared.config import get_settings
from shared.errors import DomainError
from shared.logs import configure_logging

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.celery = make_celery(settings, "bnlab-api")
    log.info("database %s, broker %s", settings.resolved_database_url, settings.resolved_broker_url)
    if not settings.auth_enabled:
        log.warning(
            "authentication is OFF: every request acts as owner 'local'%s",
            " (embedded default; serve it on 127.0.0.1 only)"
            if settings.is_embedded
            else " (BNLAB_AUTH=off)",
        )
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
        generate_unique_id_function=openapi.operation_id,
    )
    for module in (health, presets, experiments, runs, plots, compare, exports, workers, pages):
        app.include_router(module.router)
    app.include_router(session.router)
    app.include_router(prometheus)
    mount_docs(app)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(DomainError, domain_error)
    # Added last, so outermost: an oversized body is refused before anything else looks at it.
    app.add_middleware(AuthMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    # Outermost of all, so that refusals (401, 413) are counted too; it never reads a body.
    app.add_middleware(RequestMetricsMiddleware)
    openapi.install(app)
    return app


app = create_app()
