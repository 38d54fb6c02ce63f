"""Where one delivery of a seed group spent its time, logged in one line when it ends.

The line is for people reading a worker's log and for bench.bench_service, which lines it up
with what the client saw (POST, final status) to show where the service's time goes. Phases
are wall-clock seconds on this worker; `at` holds the moments (Unix time) a client's clock can
be compared with on the same machine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

LOG_PREFIX = "seed group timings "


class Timings:
    """Seconds per phase, summed over every entry, and the Unix times of named moments."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.at: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def mark(self, name: str) -> None:
        self.at[name] = time.time()

    def line(self, group_id: uuid.UUID, ending: str) -> str:
        """The log line: the prefix, then one JSON object (bench.bench_service parses it)."""
        body = {
            "group": str(group_id),
            "ending": ending,
            "seconds": {k: round(v, 6) for k, v in self.seconds.items()},
            "at": self.at,
        }
        return LOG_PREFIX + json.dumps(body)


def parse(line: str) -> dict | None:
    """The JSON object of a timings line, or None for any other line."""
    _, found, body = line.partition(LOG_PREFIX)
    return json.loads(body) if found else None
