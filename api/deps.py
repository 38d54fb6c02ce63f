"""Dependencies the routes declare: settings, a database session, the task sender, the owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from shared.config import Settings, get_settings
from shared.db import get_engine, get_sessionmaker

# The dependencies are coroutines, though they never wait: FastAPI runs a plain function in the
# thread pool, and a hop there and back per dependency cost more than some routes themselves.


async def settings_dep() -> Settings:
    """The app's settings (overridable in tests through get_settings' cache)."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]


async def session_dep(request: Request, settings: SettingsDep) -> AsyncIterator[Session]:
    """One session per request; the service layer commits.

    A read (GET, HEAD) on PostgreSQL runs in autocommit: no BEGIN and ROLLBACK round trips
    around its queries. Nothing changes for what it sees, since PostgreSQL's default isolation
    (read committed) takes a fresh snapshot for every statement anyway. Making a session does
    not touch the database; closing one may (a rollback), so that is done in the thread pool,
    except in autocommit where there is no transaction to end.
    """
    url = settings.resolved_database_url
    autocommit = request.method in READS and not url.startswith("sqlite")
    session = Session(bind=autocommit_engine(url)) if autocommit else get_sessionmaker(url)()
    try:
        yield session
    finally:
        if autocommit:
            session.close()
        else:
            await run_in_threadpool(session.close)


READS = frozenset({"GET", "HEAD"})


def autocommit_engine(url: str) -> Engine:
    """The process's engine for `url` (its pool too), in autocommit mode (a cheap view)."""
    return get_engine(url).execution_options(isolation_level="AUTOCOMMIT")


SessionDep = Annotated[Session, Depends(session_dep)]


async def celery_dep(request: Request) -> Celery:
    """The sending-only Celery app made at start-up."""
    celery: Celery = request.app.state.celery
    return celery


CeleryDep = Annotated[Celery, Depends(celery_dep)]


async def owner_dep(request: Request) -> str:
    """Who is asking, as api.auth.AuthMiddleware found it ("local" with auth off)."""
    owner: str | None = request.scope.get("state", {}).get("owner")
    if owner is None:
        # Only reachable if the middleware is missing: fail closed all the same.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", {"WWW-Authenticate": "Bearer"}
        )
    return owner


CurrentOwner = Annotated[str, Depends(owner_dep)]
