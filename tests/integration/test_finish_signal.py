"""Word of a finished experiment reaches a waiting API process when, and only when, it commits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from api.finish_watch import FinishWatch
from shared import finish_signal
from shared.db import make_engine

pytestmark = pytest.mark.integration


def finish(url: str, experiment_id: uuid.UUID, commit: bool) -> None:
    """What the worker's finishing transaction does about the signal, committed or not."""
    engine = make_engine(url)
    with Session(engine) as session:
        finish_signal.announce(session, experiment_id)
        session.commit() if commit else session.rollback()
    engine.dispose()


def run(watch: FinishWatch, scenario: Coroutine[Any, Any, bool]) -> bool:
    """asyncio.run on a thread of its own (an earlier test may leave a loop running on this
    one); then the watch stops listening, before its database is dropped."""
    try:
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, scenario).result()
    finally:
        watch.stop()


async def listening(watch: FinishWatch) -> None:
    """Until the wait has begun, and on PostgreSQL its connection listens (else it is missed)."""
    await asyncio.sleep(0)  # the waiting task starts (and, on SQLite, notes the marker's time)
    if watch.marker is None:
        assert await asyncio.to_thread(watch.listening.wait, 30)


def heard(url: str, waited_for: uuid.UUID, finished: uuid.UUID, commit: bool = True) -> bool:
    """Whether a wait for `waited_for` is woken when `finished` finishes."""

    watch = FinishWatch(url)

    async def scenario() -> bool:
        waiting = asyncio.create_task(watch.wait(waited_for, timeout_s=30 if commit else 1))
        await listening(watch)
        await asyncio.to_thread(finish, url, finished, commit)
        return await waiting

    return run(watch, scenario())


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'bnlab.sqlite3'}"


def test_a_committed_finish_wakes_its_waiter(url: str) -> None:
    experiment = uuid.uuid4()
    assert heard(url, experiment, experiment) is True


def test_a_rolled_back_finish_wakes_nobody(url: str) -> None:
    experiment = uuid.uuid4()
    assert heard(url, experiment, experiment, commit=False) is False


def test_on_postgres_another_experiment_finishing_does_not_wake_the_wait(pg_url: str) -> None:
    # (SQLite's marker says only that something finished: the woken request looks for itself.)
    watch = FinishWatch(pg_url)

    async def scenario() -> bool:
        waiting = asyncio.create_task(watch.wait(uuid.uuid4(), timeout_s=1.5))
        await listening(watch)
        await asyncio.to_thread(finish, pg_url, uuid.uuid4(), True)
        return await waiting

    assert run(watch, scenario()) is False
