"""Soak: many small experiments on three workers while workers are SIGKILLed and Redis restarts.

PostgreSQL (a fresh database of its own, dropped after) and a private redis-server on a free
port (so it can be restarted), short heartbeat and reaper periods. It submits experiments of
mixed presets (small overrides, so the whole soak takes minutes), and during the chaos window
kills a random worker with SIGKILL every few seconds and starts it again, and restarts Redis
twice (it keeps nothing on disk: the queued messages are gone). Then it waits for every
experiment to end and reads the database directly. It prints: submitted, succeeded, failed,
lost (never finished, or not stored: must be 0), runs with a duplicated or missing step (must be
0) and the time to drain. Not part of `make test`.

    python -m bench.soak [--experiments 50] [--kill-every 5] [--chaos-s 90]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.stack import Stack  # noqa: E402
from tests.servers import ThrowawayRedis  # noqa: E402

PG_SERVER = os.environ.get("BNLAB_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
WORKERS = ("w1", "w2", "w3")
SETTINGS = {
    "BNLAB_HEARTBEAT_EVERY_S": "0.5",
    "BNLAB_HEARTBEAT_STALE_S": "4",
    "BNLAB_REAP_EVERY_S": "1",
    "BNLAB_REQUEUE_AFTER_S": "5",
    "BNLAB_CHECKPOINT_EVERY_S": "0.5",
    "BNLAB_FLUSH_EVERY_S": "0.3",
    "BNLAB_TORCH_THREADS": "1",
    # Kills land every few seconds on three workers: a group may be hit more than the default 3
    # times without being what kills its worker.
    "BNLAB_MAX_WORKER_LOSSES": "20",
    "BNLAB_ALLOW_DOWNLOAD": "false",
    "BNLAB_AUTH": "off",
}
# The tutorial's studies, cut down to seconds of training each.
MIXES: list[dict[str, Any]] = [
    {
        "preset": "seed-bn-mlp",
        "overrides": {
            "dataset": {"train_size": 2048, "test_size": 512},
            "training": {"batch_size": 128},
        },
    },
    {"preset": "seed-dropout", "overrides": {"training": {"epochs": 150}}},
    {"preset": "seed-input-scale", "overrides": {"training": {"epochs": 3}}},
    {
        "preset": "seed-bn-cnn",
        "overrides": {
            "dataset": {"train_size": 512, "test_size": 256},
            "training": {"epochs": 1, "batch_size": 128},
        },
    },
]


def chaos(stack: Stack, redis: ThrowawayRedis, until: float, kill_every_s: float) -> Counter[str]:
    """Kill a random worker every `kill_every_s` (and start it again) until `until`; restart
    Redis at a third and at two thirds of the window."""
    done: Counter[str] = Counter()
    start = time.monotonic()
    window = until - start
    restarts = [start + window / 3, start + 2 * window / 3]
    while time.monotonic() < until:
        time.sleep(kill_every_s)
        name = random.choice(WORKERS)
        stack.stop(name, sig=signal.SIGKILL)
        stack.start_worker(name)
        done["kills"] += 1
        if restarts and time.monotonic() >= restarts[0]:
            restarts.pop(0)
            redis.stop()
            time.sleep(1.0)
            redis.start()
            done["redis restarts"] += 1
    return done


def step_faults(engine: Any, ids: list[str]) -> tuple[int, int]:
    """(runs checked, runs whose train_loss steps are not exactly 1..its step count).

    A run's stored steps must be 1..N with N its summary's step count (all of them for a
    succeeded run, up to the step before divergence for a diverged one), each once.
    """
    query = text(
        """
        SELECT r.id, r.summary, count(m.step), count(DISTINCT m.step), min(m.step), max(m.step)
        FROM runs r LEFT JOIN metrics m ON m.run_id = r.id AND m.key = 'train_loss'
        WHERE r.experiment_id = ANY(:ids) AND r.status IN ('succeeded', 'diverged')
        GROUP BY r.id, r.summary
        """
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"ids": [uuid.UUID(i) for i in ids]}).all()
    bad = 0
    for _, summary, count, distinct, low, high in rows:
        steps = int(summary.get("steps", 0))
        exact = count == distinct == steps and (steps == 0 or (low, high) == (1, steps))
        bad += not exact
    return len(rows), bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--chaos-s", type=float, default=90.0, help="how long kills go on")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    args = parser.parse_args()

    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    database = f"bnlab_soak_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    work = Path(tempfile.mkdtemp(prefix="bnlab-soak-"))
    redis = ThrowawayRedis()
    redis.start()
    env = {
        "BNLAB_DATABASE_URL": f"{PG_SERVER}/{database}",
        "BNLAB_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
        "BNLAB_DATA_DIR": str(work / "data"),
        **SETTINGS,
    }
    stack = Stack(env=env, log_dir=work / "logs")
    engine = create_engine(env["BNLAB_DATABASE_URL"])
    try:
        stack.start(worker=False)
        for name in WORKERS:
            stack.start_worker(name)
        started = time.monotonic()
        chaos_until = started + args.chaos_s
        ids: list[str] = []
        for i in range(args.experiments):
            status, body = stack.request("POST", "/api/v1/experiments", MIXES[i % len(MIXES)])
            if status != 201:
                raise SystemExit(f"submission {i} refused: {status} {body}")
            ids.append(str(body["id"]))
        submitted_s = time.monotonic() - started
        happened = chaos(stack, redis, chaos_until, args.kill_every)
        chaos_end = time.monotonic()
        deadline = chaos_end + args.drain_timeout
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT id, status FROM experiments WHERE id = ANY(:ids)"),
                    {"ids": [uuid.UUID(i) for i in ids]},
                ).all()
            statuses = {str(row[0]): row[1] for row in rows}
            if len(statuses) == len(ids) and all(
                s not in ("queued", "running") for s in statuses.values()
            ):
                break
            time.sleep(1.0)
        drained = time.monotonic()
        counts = Counter(statuses.values())
        lost = len(ids) - sum(n for s, n in counts.items() if s not in ("queued", "running"))
        checked, faulty = step_faults(engine, ids)
        with engine.connect() as connection:
            errors = connection.execute(
                text("SELECT DISTINCT error FROM experiments WHERE status = 'failed'")
            ).scalars()
            error_list = [e for e in errors if e]
            resumed = connection.execute(
                text("SELECT count(*) FROM experiments WHERE id = ANY(:ids) AND attempt > 1"),
                {"ids": [uuid.UUID(i) for i in ids]},
            ).scalar_one()
        print(f"soak: {len(WORKERS)} workers, PostgreSQL + private Redis; logs in {work / 'logs'}")
        print(f"  submitted          {len(ids)}  (in {submitted_s:.1f} s)")
        print(f"  worker SIGKILLs    {happened['kills']}  (every {args.kill_every:g} s)")
        print(f"  Redis restarts     {happened['redis restarts']}")
        print(f"  claimed again      {resumed}  (experiments a kill or restart interrupted)")
        print(f"  succeeded          {counts.get('succeeded', 0)}")
        print(f"  failed             {counts.get('failed', 0)}")
        print(f"  cancelled          {counts.get('cancelled', 0)}")
        print(f"  lost               {lost}  (must be 0)")
        print(f"  runs checked       {checked}")
        print(f"  runs with a duplicated or missing step  {faulty}  (must be 0)")
        print(f"  time to drain      {drained - started:.1f} s from the first submission")
        print(f"                     {drained - chaos_end:.1f} s after the last kill")
        for error in error_list:
            print(f"  failure: {error}")
        if lost or faulty:
            raise SystemExit(1)
    finally:
        engine.dispose()
        stack.stop()
        redis.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
