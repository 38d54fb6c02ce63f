"""A sweep of small points on one worker against two workers, side by side in one run.

    python -m bench.bench_sweep [--points 12] [--repeat 1] [--redis redis://127.0.0.1:6379]

PostgreSQL + Redis, two warm worker processes with one torch thread each: the first serves the
queues `any` and `cpu`, the second only `cpu`. A sweep of `device: auto` points (queue `any`)
is trained by the first alone; the same sweep with `device: cpu` (queue `cpu`) by both. The
rounds alternate, so both see the same machine. Also one point submitted alone, to set each
point's cost in a sweep against an experiment on its own.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

from sqlalchemy import create_engine, text

from scripts.stack import Stack

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
POINT = {
    "name": "bench-point",
    "dataset": {"name": "digits"},
    "variants": [
        {"name": "plain", "model": {"kind": "mlp", "hidden": [64, 32]}},
        {
            "name": "bn",
            "model": {"kind": "mlp", "hidden": [64, 32], "batchnorm": "before_activation"},
        },
    ],
    "training": {"epochs": 6, "batch_size": 32, "seeds": [0]},
    "probes": {"every": 50},
}


def wait(stack: Stack, path: str) -> dict:
    """Poll until the sweep or experiment at `path` has finished."""
    while True:
        _, current = stack.request("GET", path)
        if current["status"] not in ("queued", "running"):
            assert current["status"] == "succeeded", current
            return dict(current)
        time.sleep(0.05)


def sweep_seconds(stack: Stack, points: int, device: str) -> tuple[float, set[str]]:
    """Seconds from POST to every point succeeded, and the workers that trained them."""
    lrs = [round(0.01 + 0.01 * i, 4) for i in range(points)]
    body = {"base": {"spec": {**POINT, "device": device}}, "axes": {"training.optimizer.lr": lrs}}
    started = time.perf_counter()
    status, sweep = stack.request("POST", "/api/v1/sweeps", body)
    assert status == 201, sweep
    final = wait(stack, f"/api/v1/sweeps/{sweep['id']}")
    return time.perf_counter() - started, {p["worker"] for p in final["points"]}


def alone_seconds(stack: Stack) -> float:
    """Seconds from POST to succeeded of one point as an experiment of its own (one worker)."""
    started = time.perf_counter()
    status, experiment = stack.request("POST", "/api/v1/experiments", {"spec": POINT})
    assert status == 201, experiment
    wait(stack, f"/api/v1/experiments/{experiment['id']}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    args = parser.parse_args()

    name = f"bnlab_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    env = {
        "BNLAB_DATA_DIR": tempfile.mkdtemp(prefix="bnlab-bench-"),
        "BNLAB_DATABASE_URL": f"{PG_SERVER}/{name}",
        "BNLAB_BROKER_URL": f"{args.redis}/13",
        "BNLAB_TORCH_THREADS": "1",
    }
    one, two, alone = [], [], []
    try:
        with Stack(env=env, queues="any,cpu") as stack:
            stack.queues = "cpu"
            stack.start_worker("worker2")
            alone_seconds(stack)  # warm the first worker: data set loaded, modules imported
            sweep_seconds(stack, 2, "cpu")  # and both
            for _ in range(args.repeat):
                seconds, workers = sweep_seconds(stack, args.points, "auto")
                assert len(workers) == 1, workers
                one.append(seconds)
                seconds, workers = sweep_seconds(stack, args.points, "cpu")
                assert len(workers) == 2, workers
                two.append(seconds)
                alone.append(alone_seconds(stack))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    t1, t2, ta = statistics.median(one), statistics.median(two), statistics.median(alone)
    n = args.points
    print(f"sweep of {n} points (digits MLP, 2 variants, 1 seed), PostgreSQL + Redis, ")
    print(f"one torch thread per worker, median of {args.repeat}")
    print(f"  one worker:   {t1:7.2f} s  ({t1 / n:5.2f} s per point)")
    print(f"  two workers:  {t2:7.2f} s  ({t2 / n:5.2f} s per point)")
    print(
        f"  speed-up two / one workers:           {t1 / t2:5.2f}x  (goal >= 1.8x on 2 free cores)"
    )
    print(f"  one point alone (POST to succeeded):  {ta:5.2f} s")
    rounds = ", ".join(f"{a:.1f}/{b:.1f}/{c:.1f}" for a, b, c in zip(one, two, alone, strict=True))
    print(f"  each round, one/two workers/alone (s): {rounds}")
    print(f"  a point's cost in a one-worker sweep against alone: {t1 / n / ta:5.2f}x")


if __name__ == "__main__":
    main()
