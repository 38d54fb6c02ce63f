"""The seed study through the service against the same training in-process, side by side.

    python -m bench.bench_service [--repeat 3] [--postgres]

Through the service: a warm worker (one study run first), then POST to `succeeded`, polled every
20 ms. In-process: worker.training.loop.train with a sink that keeps everything in memory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

import torch
from sqlalchemy import create_engine, text

from scripts.stack import Stack
from shared.presets import PRESETS
from shared.spec import ExperimentSpec
from worker.training.loop import train
from worker.training.sink import MemorySink

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def through_service(stack: Stack) -> float:
    """Seconds from POST to succeeded."""
    started = time.perf_counter()
    status, experiment = stack.request("POST", "/api/v1/experiments", {"preset": "seed-bn-mlp"})
    assert status == 201, experiment
    while True:
        _, current = stack.request("GET", f"/api/v1/experiments/{experiment['id']}")
        if current["status"] not in ("queued", "running"):
            assert current["status"] == "succeeded", current
            return time.perf_counter() - started
        time.sleep(0.02)


def in_process(spec: ExperimentSpec) -> float:
    """Seconds for the same training with an in-memory sink."""
    started = time.perf_counter()
    train(spec, MemorySink(), device="cpu")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis, not embedded")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads, both sides (0: default)"
    )
    args = parser.parse_args()

    env = {"BNLAB_DATA_DIR": tempfile.mkdtemp(prefix="bnlab-bench-")}
    if args.threads:
        torch.set_num_threads(args.threads)
        env["BNLAB_TORCH_THREADS"] = str(args.threads)
    admin = None
    if args.postgres:
        name = f"bnlab_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        env |= {
            "BNLAB_DATABASE_URL": f"{PG_SERVER}/{name}",
            "BNLAB_BROKER_URL": "redis://127.0.0.1:6379/14",
        }
    with Stack(env=env) as stack:
        _, body = stack.request("GET", "/api/v1/presets/seed-bn-mlp")
        # The preset as it is, fallback included: both sides resolve the data set the same way.
        spec = ExperimentSpec.model_validate(PRESETS["seed-bn-mlp"].spec_copy())
        through_service(stack)  # warm the worker: data set loaded, modules imported
        in_process(spec)
        service_s, local_s = [], []
        for _ in range(args.repeat):
            service_s.append(through_service(stack))
            local_s.append(in_process(spec))
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    service, local = statistics.median(service_s), statistics.median(local_s)
    backend = "PostgreSQL + Redis" if args.postgres else "embedded (SQLite + filesystem broker)"
    threads = args.threads or "default"
    print(f"seed-bn-mlp, {backend}, torch threads {threads}, median of {args.repeat}")
    print(f"  through the service (POST to succeeded): {service:7.2f} s")
    print(f"  in-process training core:                {local:7.2f} s")
    print(f"  ratio service / in-process:              {service / local:7.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
