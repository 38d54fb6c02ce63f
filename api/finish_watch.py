"""Wakes the wait route's requests when an experiment finishes (shared/finish_signal.py).

One watcher per API process and database: on PostgreSQL a thread holding one connection that
LISTENs and hands each notification to the event loop; on SQLite the marker file's modification
time, looked at every few milliseconds (a stat, no query). Either way a woken request asks the
database itself, so a missed or spurious signal costs a query, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections import defaultdict

import psycopg
from sqlalchemy.engine import make_url

from shared import finish_signal

log = logging.getLogger(__name__)

MARKER_EVERY_S = 0.005  # SQLite: how often the marker's time is looked at while someone waits
RECONNECT_S = 1.0  # doubled after every failed attempt, up to RECONNECT_MAX_S
RECONNECT_MAX_S = 30.0


class FinishWatch:
    """Lets a coroutine wait, with a timeout, for word that one experiment may have finished."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.marker = finish_signal.marker(url)
        self.postgres = make_url(url).get_backend_name() == "postgresql"
        self.waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listener: threading.Thread | None = None
        # Set once the listening connection hears (PostgreSQL): what came before is missed.
        self.listening = threading.Event()
        self.stopped = threading.Event()

    async def wait(self, experiment_id: uuid.UUID, timeout_s: float) -> bool:
        """True when word came that the experiment (on SQLite: some experiment) finished, False
        after timeout_s without it."""
        if self.marker is not None:
            return await self._wait_marker(timeout_s)
        if not self.postgres:
            await asyncio.sleep(timeout_s)  # no signal to hear: the caller's re-check decides
            return False
        self._listen()
        woken = asyncio.Event()
        key = str(experiment_id)
        self.waiters[key].add(woken)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout_s)
            return woken.is_set()
        finally:
            self.waiters[key].discard(woken)
            if not self.waiters[key]:
                del self.waiters[key]

    async def _wait_marker(self, timeout_s: float) -> bool:
        assert self.marker is not None
        seen = _mtime(self.marker)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(MARKER_EVERY_S)
            if _mtime(self.marker) != seen:
                return True
        return False

    def _listen(self) -> None:
        """Start the listening thread once, from the event loop it will wake."""
        if self.listener is not None:
            return
        self.loop = asyncio.get_running_loop()
        self.listener = threading.Thread(target=self._listen_forever, daemon=True)
        self.listener.name = "bnlab-finish-watch"
        self.listener.start()

    def _listen_forever(self) -> None:
        conninfo = make_url(self.url).set(drivername="postgresql")
        dsn = conninfo.render_as_string(hide_password=False)
        pause = RECONNECT_S
        while not self.stopped.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as connection:
                    connection.execute(f"LISTEN {finish_signal.CHANNEL}")
                    self.listening.set()
                    pause = RECONNECT_S
                    while not self.stopped.is_set():
                        for notice in connection.notifies(timeout=1.0):
                            assert self.loop is not None
                            self.loop.call_soon_threadsafe(self._wake, notice.payload)
            except Exception as exc:
                self.listening.clear()
                # Waiters still look at the database once a second meanwhile.
                log.warning("listening for finished experiments: %s; again in %.0f s", exc, pause)
                self.stopped.wait(pause)
                pause = min(pause * 2, RECONNECT_MAX_S)

    def stop(self) -> None:
        """Stop listening (within a second); the waits go on looking at the database."""
        self.stopped.set()

    def _wake(self, experiment_id: str) -> None:
        for woken in self.waiters.get(experiment_id, ()):
            woken.set()


def _mtime(path: os.PathLike[str]) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@functools.cache
def watch_for(url: str) -> FinishWatch:
    """The process's watcher for this database."""
    return FinishWatch(url)
