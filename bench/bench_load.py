"""Load on the API over loopback: 200 concurrent submissions, then 2,000 concurrent reads.

Runs against PostgreSQL (a fresh database of its own, dropped after) and a private redis-server
on a free port, with tokens on, once with one uvicorn process and once with two, and prints the
two side by side. No Celery worker runs: submissions stay queued (the bench measures the API, not
training) and are all cancelled at the end. Afterwards every submission must be accounted for:
listed by the API exactly once, then cancelled.

    python -m bench.bench_load [--submissions 200] [--reads 2000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.stack import Stack, free_port  # noqa: E402

PG_SERVER = os.environ.get("BNLAB_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
# The small spec: digits, a 16-unit MLP, one epoch (it would train in about a second).
SPEC = {
    "name": "load",
    "dataset": {"name": "digits"},
    "variants": [{"name": "plain", "model": {"kind": "mlp", "hidden": [16]}}],
    "training": {"epochs": 1, "batch_size": 64},
}


@dataclass
class Phase:
    """Latencies and failures of one phase."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def row(self, workers: int) -> str:
        """One line of the results table."""
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
        rate = len(ordered) / self.wall_s if self.wall_s else 0.0
        p50 = statistics.median(ordered) if ordered else 0.0
        return (
            f"{workers:>7}  {self.name:<8} {len(ordered) + len(self.errors):>6} "
            f"{len(self.errors):>6} {rate:>8.0f} {p50 * 1e3:>8.1f} {p99 * 1e3:>8.1f}"
        )


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"bnlab_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port: the queued messages die with it."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
            if ping.stdout.strip() == b"PONG":
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


async def timed(phase: Phase, send: Callable[[], Awaitable[httpx.Response]], expected: int) -> Any:
    """Send one request, record its latency or its error; the decoded body."""
    start = time.perf_counter()
    try:
        response = await send()
    except httpx.HTTPError as exc:
        phase.errors.append(f"{type(exc).__name__}: {exc}")
        return None
    phase.latencies.append(time.perf_counter() - start)
    if response.status_code != expected:
        phase.errors.append(f"{response.status_code}: {response.text[:200]}")
        return None
    return response.json()


async def load(stack: Stack, submissions: int, reads: int, concurrency: int) -> list[Phase]:
    """Submit, read, then check every submission is there once, and cancel them all."""
    headers = {"Authorization": f"Bearer {stack.token}"}
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close them under
    # a request (httpx's default is also 5 s: a race that shows up as a spurious ReadError).
    limits = httpx.Limits(
        max_connections=submissions, max_keepalive_connections=submissions, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(
        base_url=stack.url, headers=headers, limits=limits, timeout=120
    ) as client:
        submit = Phase("submit")
        start = time.perf_counter()
        created = await asyncio.gather(
            *(
                timed(submit, lambda: client.post("/api/v1/experiments", json=SPEC), 201)
                for _ in range(submissions)
            )
        )
        submit.wall_s = time.perf_counter() - start
        experiments = [e for e in created if e is not None]

        read = Phase("read")
        gate = asyncio.Semaphore(concurrency)
        rng = random.Random(0)
        paths = []
        for i in range(reads):
            chosen = rng.choice(experiments)
            paths.append(
                (
                    f"/api/v1/experiments/{chosen['id']}",
                    "/api/v1/experiments?limit=50",
                    f"/api/v1/runs/{chosen['runs'][0]['id']}/metrics",
                )[i % 3]
            )

        async def one_read(path: str) -> None:
            async with gate:
                await timed(read, lambda: client.get(path), 200)

        start = time.perf_counter()
        await asyncio.gather(*(one_read(p) for p in paths))
        read.wall_s = time.perf_counter() - start

        accounted = Phase("account")
        listed: list[str] = []
        cursor = ""
        while True:
            page = await timed(
                accounted,
                functools.partial(client.get, f"/api/v1/experiments?limit=200{cursor}"),
                200,
            )
            if page is None:
                break
            listed += [e["id"] for e in page["items"]]
            if page["next_cursor"] is None:
                break
            cursor = f"&cursor={page['next_cursor']}"
        submitted = {e["id"] for e in experiments}
        if len(listed) != len(set(listed)) or set(listed) != submitted:
            accounted.errors.append(f"listed {len(listed)} ({len(set(listed))} distinct)")
        cancelled = await asyncio.gather(
            *(
                timed(
                    accounted,
                    functools.partial(client.post, f"/api/v1/experiments/{i}/cancel"),
                    200,
                )
                for i in submitted
            )
        )
        if any(c is None or c["status"] != "cancelled" for c in cancelled):
            accounted.errors.append("not every submission could be cancelled")
        print(
            f"# {stack.api_workers} uvicorn process(es): {len(submitted)}/{submissions} "
            f"submissions stored, {len(set(listed))} listed, "
            f"{sum(c is not None for c in cancelled)} cancelled"
        )
        return [submit, read, accounted]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64, help="reads in flight at once")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("needs redis-server", file=sys.stderr)
        return 2
    results: list[tuple[int, list[Phase]]] = []
    for workers in (1, 2):
        with postgres_database() as db, private_redis() as broker:
            env = {
                "BNLAB_DATABASE_URL": db,
                "BNLAB_BROKER_URL": broker,
                "BNLAB_DATA_DIR": tempfile.mkdtemp(prefix="bnlab-bench-"),
                "BNLAB_LOG_LEVEL": "WARNING",
                # The bench submits 200 at once, by design.
                "BNLAB_RATE_SUBMISSIONS_PER_MINUTE": "0",
            }
            stack = Stack(env=env, api_workers=workers)
            stack.start(worker=False)
            try:
                phases = asyncio.run(load(stack, args.submissions, args.reads, args.concurrency))
            finally:
                stack.stop()
                shutil.rmtree(env["BNLAB_DATA_DIR"], ignore_errors=True)
            results.append((workers, phases))
    print(
        f"\n{'uvicorn':>7}  {'phase':<8} {'reqs':>6} {'errors':>6} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    for workers, phases in results:
        for phase in phases[:2]:
            print(phase.row(workers))
    for index, name in enumerate(("submit", "read")):
        one, two = (phases[index] for _, phases in results)
        ratio = (len(two.latencies) / two.wall_s) / (len(one.latencies) / one.wall_s)
        print(f"{name}: 2 processes / 1 process throughput = {ratio:.2f}x")
    failures = [e for _, phases in results for p in phases for e in p.errors]
    for error in failures[:20]:
        print(f"error: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
