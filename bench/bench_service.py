"""The seed study through the service against the same training in-process, and where the time goes.

    python -m bench.bench_service [--repeat 5] [--backend both|postgres|embedded]

Through the service: a warm worker (one study run first), then POST and wait for the final
status the way a client does (the API's wait, worker/timings.py's line in the worker's log
says what happened in between). In-process: worker.training.loop.train with an in-memory sink,
with and without probes (the difference is what probes cost). Repeats are interleaved, so load
on the machine hits both sides alike; medians and minimums are printed side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bench.bench_load import postgres_database
from scripts.stack import Stack
from shared import results
from shared.config import Settings
from shared.models import Run
from shared.presets import PRESETS
from shared.spec import ExperimentSpec
from worker.timings import parse
from worker.training.config import TrainingConfig
from worker.training.loop import train
from worker.training.sink import MemorySink

PRESET = "seed-bn-mlp"
TARGET = 1.1


def through_service(stack: Stack) -> dict[str, float]:
    """One study: the client's moments (Unix time) by name, and the experiment's id."""
    sent = time.time()
    status, experiment = stack.request("POST", "/api/v1/experiments", {"preset": PRESET})
    assert status == 201, experiment
    posted = time.time()
    path = f"/api/v1/experiments/{experiment['id']}/wait?timeout_s=60"
    while True:
        code, current = stack.request("GET", path)
        assert code == 200, (code, current)
        if current["status"] not in ("queued", "running"):
            break
    assert current["status"] == "succeeded", current
    seen = time.time()
    return {"sent": sent, "posted": posted, "seen": seen, "id": experiment["id"]}  # type: ignore[dict-item]


def findings_seconds(url: str, experiment_id: str) -> float:
    """What computing the findings of a finished experiment costs, read from its database."""
    engine = create_engine(url)
    with Session(engine) as session:
        runs = session.scalars(
            select(Run).where(Run.experiment_id == uuid.UUID(experiment_id)).order_by(Run.position)
        ).all()
        started = time.perf_counter()
        results.experiment_findings(session, runs)
        took = time.perf_counter() - started
    engine.dispose()
    return took


def in_process(spec: ExperimentSpec, config: TrainingConfig) -> float:
    started = time.perf_counter()
    train(spec, MemorySink(checkpoint_every_flush=False), device="cpu", config=config)
    return time.perf_counter() - started


def worker_timings(log: Path) -> dict[str, dict[str, Any]]:
    """The worker's timings lines by seed group id (worker/timings.py)."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        parsed = parse(line)
        if parsed is not None:
            found[parsed["group"]] = parsed
    return found


def breakdown(client: dict[str, Any], worker: dict[str, Any], findings: float) -> dict[str, float]:
    """Seconds per phase of one study through the service, in the order they happen."""
    s, at = worker["seconds"], worker["at"]
    setup = at["first_step"] - at["train_start"]
    # Writes run on their own thread (worker/writer.py); training waits only when it is behind,
    # and the runner waits at close for the last flush (after the "train" phase).
    waited = s.get("writes waited for", 0) + s.get("checkpoints", 0)
    stored = waited + s.get("writes waited for at close", 0)
    side = waited + s.get("polls", 0) + s.get("dataset_record", 0)
    return {
        "POST (validate, store, send)": client["posted"] - client["sent"],
        "queue pick-up": at["received"] - client["posted"],
        "claim and load": s["claim"] + s["load"],
        "data set and models": setup - s.get("dataset_record", 0),
        "training (with probes)": s["train"] - setup - side + s.get("dataset_record", 0),
        "database writes, waited for": stored,
        "  (on the writer's own thread)": s.get("writes (own thread)", 0),
        "dataset record, polls": s.get("polls", 0) + s.get("dataset_record", 0),
        "  (polls on the writer's thread)": s.get("polls (own thread)", 0),
        "finish (outcomes, findings)": s["finish"],
        "  of which findings": findings,
        "log line to final status seen": client["seen"] - at["ended"],
        "total, POST to final status": client["seen"] - client["sent"],
    }


def bench_backend(backend: str, repeat: int, threads: int) -> None:
    logs = Path(tempfile.mkdtemp(prefix="bnlab-bench-logs-"))
    env = {"BNLAB_DATA_DIR": tempfile.mkdtemp(prefix="bnlab-bench-")}
    if threads:
        env["BNLAB_TORCH_THREADS"] = str(threads)
    # The worker's flush period, on both sides (BNLAB_FLUSH_EVERY_S, as the worker reads it).
    flush = Settings().flush_every_s
    config = TrainingConfig(flush_every_s=flush)
    cleanup = contextlib.ExitStack()
    if backend == "postgres":
        env["BNLAB_DATABASE_URL"] = cleanup.enter_context(postgres_database())
        env["BNLAB_BROKER_URL"] = _redis_url()
    # The preset as it is, fallback included: both sides resolve the data set the same way.
    spec = ExperimentSpec.model_validate(PRESETS[PRESET].spec_copy())
    probes_off = spec.probes.model_copy(update={"enabled": False})
    no_probes = spec.model_copy(update={"probes": probes_off})
    samples: dict[str, list[float]] = {"service": [], "core": [], "core, no probes": []}
    phases: list[dict[str, float]] = []
    with cleanup, Stack(env=env, log_dir=logs) as stack:
        url = _database_url(env)
        runs: dict[str, Callable[[], Any]] = {
            "service": lambda: through_service(stack),
            "core": lambda: in_process(spec, config),
            "core, no probes": lambda: in_process(no_probes, config),
        }
        for fn in runs.values():  # warm: data set loaded, modules imported, caches full
            fn()
        clients = []
        for _ in range(repeat):
            for label, fn in runs.items():
                started = time.perf_counter()
                out = fn()
                if label == "service":
                    clients.append(out)
                    samples[label].append(out["seen"] - out["sent"])
                else:
                    samples[label].append(time.perf_counter() - started)
        by_group = worker_timings(logs / "worker.log")
        for client in clients:
            _, experiment = stack.request("GET", f"/api/v1/experiments/{client['id']}")
            group = experiment["groups"][0]["id"]
            findings = findings_seconds(url, client["id"])
            phases.append(breakdown(client, by_group[group], findings))
    report(backend, repeat, threads, samples, phases)


def report(
    backend: str,
    repeat: int,
    threads: int,
    samples: dict[str, list[float]],
    phases: list[dict[str, float]],
) -> None:
    label = {"postgres": "PostgreSQL + Redis", "embedded": "embedded (SQLite + filesystem broker)"}
    print(
        f"{PRESET}, {label[backend]}, torch threads {threads or torch.get_num_threads()}, "
        f"{repeat} interleaved repeats: median (min), seconds"
    )
    for name, values in samples.items():
        print(f"  {name:42s} {statistics.median(values):7.3f} ({min(values):.3f})")
    service, core = samples["service"], samples["core"]
    for how, pick in (("median", statistics.median), ("min", min)):
        ratio = pick(service) / pick(core)
        verdict = "met" if ratio <= TARGET else "MISSED"
        print(f"  service / core, {how:6s} {ratio:26.2f}x   (target <= {TARGET}x) {verdict}")
    probes = statistics.median(samples["core"]) - statistics.median(samples["core, no probes"])
    print(f"  probes, in-process (core - core without): {probes:7.3f}")
    print("  where the service's time goes (median of each phase):")
    for phase in phases[0]:
        print(f"    {phase:40s} {statistics.median(p[phase] for p in phases):7.3f}")


def _redis_url() -> str:
    return os.environ.get("BNLAB_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/") + "/14"


def _database_url(env: dict[str, str]) -> str:
    if "BNLAB_DATABASE_URL" in env:
        return env["BNLAB_DATABASE_URL"]
    return Settings(data_dir=Path(env["BNLAB_DATA_DIR"])).resolved_database_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=["both", "postgres", "embedded"], default="both")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for backend in ("postgres", "embedded") if args.backend == "both" else (args.backend,):
        bench_backend(backend, args.repeat, args.threads)


if __name__ == "__main__":
    main()
