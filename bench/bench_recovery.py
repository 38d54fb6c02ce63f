"""How soon the service reacts, on PostgreSQL and a Redis of its own, with the tests' periods.

    python -m bench.bench_recovery

The integration tests assert what happens (a SIGTERMed worker exits by itself, a cancelled run
stops, a SIGKILLed run resumes); this prints how long each took, beside the period that bounds
it. PostgreSQL: BNLAB_BENCH_PG if it answers, else a throwaway one; Redis: always a throwaway one.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text

from scripts.stack import Stack
from tests.servers import ThrowawayPostgres, ThrowawayRedis, pg_answers

PG = os.environ.get("BNLAB_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
PERIODS = {
    "BNLAB_HEARTBEAT_EVERY_S": "0.5",
    "BNLAB_HEARTBEAT_STALE_S": "3",
    "BNLAB_REAP_EVERY_S": "1",
    "BNLAB_REQUEUE_AFTER_S": "3",
    "BNLAB_CHECKPOINT_EVERY_S": "0.3",
    "BNLAB_FLUSH_EVERY_S": "0.2",
    "BNLAB_TORCH_THREADS": "1",
    "BNLAB_ALLOW_DOWNLOAD": "false",
}
LONG = {
    "name": "long",
    "dataset": {"name": "digits"},
    "variants": [{"name": "plain", "model": {"kind": "mlp", "hidden": [32]}}],
    "training": {"epochs": 400, "batch_size": 64},
}


@contextmanager
def database() -> Iterator[str]:
    """A fresh database on BNLAB_BENCH_PG, or on a throwaway server; dropped after."""
    throwaway = None if pg_answers(PG) else ThrowawayPostgres().start()
    server = throwaway.url if throwaway else PG
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    name = f"bnlab_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
        if throwaway:
            throwaway.stop()


def until(check: Callable[[], bool], timeout_s: float = 120) -> float:
    """Seconds until `check()` holds, polled every 50 ms."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError("the service never got there")
        time.sleep(0.05)
    return time.perf_counter() - started


def running(stack: Stack) -> str:
    """Submit LONG and wait until it has trained a little."""
    status, body = stack.request("POST", "/api/v1/experiments", {"spec": LONG})
    assert status == 201, body
    until(lambda: state(stack, body["id"])["progress"] > 0.02)
    return str(body["id"])


def state(stack: Stack, experiment_id: str) -> dict[str, Any]:
    return dict(stack.request("GET", f"/api/v1/experiments/{experiment_id}")[1])


def main() -> None:
    redis = ThrowawayRedis().start()
    try:
        with database() as url, tempfile.TemporaryDirectory(prefix="bnlab-bench-") as data:
            env = {
                **PERIODS,
                "BNLAB_DATABASE_URL": url,
                "BNLAB_BROKER_URL": f"{redis.url}/0",
                "BNLAB_DATA_DIR": data,
            }
            with Stack(env=env) as stack:
                rows = measure(stack)
    finally:
        redis.stop()
    print("recovery on PostgreSQL + Redis (stale 3 s, reap every 1 s, flush 0.2 s)")
    for what, seconds, bound in rows:
        print(f"  {what:<42} {seconds:6.2f} s   (bounded by {bound})")


def measure(stack: Stack) -> list[tuple[str, float, str]]:
    rows = []
    experiment_id = running(stack)
    stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel")
    seconds = until(lambda: state(stack, experiment_id)["status"] == "cancelled")
    rows.append(("cancel of a running experiment to cancelled", seconds, "a step plus a flush"))

    experiment_id = running(stack)
    worker = stack.processes["worker"]
    started = time.perf_counter()
    stack.stop("worker", sig=signal.SIGTERM, timeout_s=60)
    rows.append(("SIGTERM to the worker's exit", time.perf_counter() - started, "compose's 60 s"))
    assert worker.returncode != -signal.SIGKILL
    stack.start_worker()
    until(lambda: state(stack, experiment_id)["attempt"] == 2)
    stack.stop("worker", sig=signal.SIGKILL)
    started = time.perf_counter()
    stack.start_worker()
    seconds = until(lambda: state(stack, experiment_id)["attempt"] == 3)
    rows.append(("SIGKILL to running again", seconds, "stale 3 s + reap 1 s + a worker's start"))
    stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel")
    return rows


if __name__ == "__main__":
    main()
