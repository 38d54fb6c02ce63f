"""An in-process cache of rendered plots, and the HTTP caching around it (ETag, 304).

A finished experiment's plot never changes, so it is rendered once and kept (least recently
used first out, bounded in bytes). A running one's entries live one second: however many
dashboards poll, each plot is rendered at most once a second, because one lock per key makes
concurrent requests for the same plot wait for a single render instead of each starting one.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from fastapi import Request, Response

RUNNING_TTL_S = 1.0
MAX_BYTES = 64 * 1024 * 1024
LOCK_STRIPES = 64
# Finished: the bytes never change, but a newer server may draw them differently; an hour,
# then a cheap revalidation. Running: always revalidate (a 304 when nothing changed).
FINISHED_CACHE_CONTROL = "private, max-age=3600"
RUNNING_CACHE_CONTROL = "private, no-cache"


@dataclass(frozen=True)
class Entry:
    """One rendered plot."""

    body: bytes
    media_type: str
    etag: str
    expires: float | None

    def fresh(self, now: float) -> bool:
        """Still servable: kept forever, or not yet past its second."""
        return self.expires is None or now < self.expires


class PlotCache:
    """Bytes by key, LRU within `max_bytes`, rendered at most once per key at a time."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self.renders = 0

    def _get(self, key: Hashable) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not entry.fresh(time.monotonic()):
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= len(entry.body)

    def _put(self, key: Hashable, entry: Entry) -> None:
        with self._lock:
            self._drop(key)
            if len(entry.body) > self.max_bytes // 4:
                return
            self._entries[key] = entry
            self._size += len(entry.body)
            while self._size > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def get_or_render(
        self, key: Hashable, ttl: float | None, render: Callable[[], tuple[bytes, str]]
    ) -> Entry:
        """The cached entry, or a fresh render (exceptions propagate and nothing is stored)."""
        entry = self._get(key)
        if entry is not None:
            return entry
        with self._stripes[hash(key) % LOCK_STRIPES]:
            entry = self._get(key)
            if entry is not None:
                return entry
            body, media_type = render()
            self.renders += 1
            etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
            expires = None if ttl is None else time.monotonic() + ttl
            entry = Entry(body, media_type, etag, expires)
            self._put(key, entry)
            return entry

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._entries.clear()
            self._size = 0


CACHE = PlotCache()


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match semantics: '*' or any listed tag, weak or strong, equal to ours."""
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def cached_response(
    request: Request,
    key: Hashable,
    finished: bool,
    render: Callable[[], tuple[bytes, str]],
    cache: PlotCache = CACHE,
) -> Response:
    """200 with the bytes, or 304 when the client already holds them; ETag either way."""
    entry = cache.get_or_render(key, None if finished else RUNNING_TTL_S, render)
    headers = {
        "ETag": entry.etag,
        "Cache-Control": FINISHED_CACHE_CONTROL if finished else RUNNING_CACHE_CONTROL,
    }
    if etag_matches(request.headers.get("if-none-match"), entry.etag):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type=entry.media_type, headers=headers)
