"""Rate limits: submissions per owner, logins per client address, reads per owner (off).

Fixed one-minute windows. With a Redis broker the counts live in Redis (INCR and EXPIRE on one
key per window), so every API process, on any host, shares one limit; otherwise (the embedded
default, one process on one machine) they live in the process. Should Redis not answer, the
request goes through and a warning is logged: a broker hiccup must not lock every user out.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import lru_cache
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool

from shared.config import Settings

log = logging.getLogger(__name__)

WINDOW_S = 60
SUBMIT = ("POST", "/api/v1/experiments")
LOGIN = ("POST", "/session")
READS = frozenset({"GET", "HEAD"})


class LocalCounter:
    """Counts per name in the current window, in this process; a new window starts from zero."""

    def __init__(self) -> None:
        self.window = -1
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def hit(self, name: str, window: int) -> int:
        with self.lock:
            if window != self.window:
                self.window, self.counts = window, {}
            self.counts[name] = self.counts.get(name, 0) + 1
            return self.counts[name]


local_counter = LocalCounter()


@lru_cache
def redis_client(url: str) -> Any:
    """One client (and connection pool) per process and broker URL."""
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def shared(settings: Settings) -> bool:
    """Whether limits are shared through Redis (the broker is Redis) or kept per process."""
    return settings.resolved_broker_url.startswith(("redis://", "rediss://"))


def hit_redis(url: str, name: str, window: int) -> int | None:
    """Count one request in Redis; None if Redis does not answer."""
    key = f"bnlab:ratelimit:{name}:{window}"
    try:
        pipe = redis_client(url).pipeline()
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        count, _ = pipe.execute()
        return int(count)
    except redis.RedisError as exc:
        log.warning("rate limit not applied: Redis did not answer (%s)", exc)
        return None


def rule(
    settings: Settings, method: str, path: str, owner: str | None, client: str
) -> tuple[str, int] | None:
    """The counter name and per-minute limit that applies to a request, if any."""
    if (method, path) == SUBMIT and owner is not None and settings.rate_submissions_per_minute:
        return f"submit:{owner}", settings.rate_submissions_per_minute
    if (method, path) == LOGIN and settings.rate_logins_per_minute:
        return f"login:{client}", settings.rate_logins_per_minute
    if method in READS and owner is not None and settings.rate_reads_per_minute:
        return f"read:{owner}", settings.rate_reads_per_minute
    return None


async def retry_after(
    settings: Settings, method: str, path: str, owner: str | None, client: str
) -> int | None:
    """Seconds to wait if this request is over its limit (it is counted either way), else None."""
    found = rule(settings, method, path, owner, client)
    if found is None:
        return None
    name, limit = found
    now = time.time()
    window = int(now // WINDOW_S)
    if shared(settings):
        count = await run_in_threadpool(hit_redis, settings.resolved_broker_url, name, window)
        if count is None:
            return None
    else:
        count = local_counter.hit(name, window)
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * WINDOW_S - now))
