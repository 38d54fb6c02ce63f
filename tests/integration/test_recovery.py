"""Nothing lost: a killed or stopped worker, a restarted Redis, a diverging run.

These run on PostgreSQL and a Redis of their own (a private redis-server on a free port, so that
restarting it disturbs nobody), with short heartbeat and reaper periods.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from scripts.stack import Stack
from shared.spec import ExperimentSpec
from tests.conftest import ARTIFACTS
from tests.integration.conftest import HERMETIC, PostgresDatabases
from tests.servers import ServerUnavailable, ThrowawayRedis
from worker.training.loop import train
from worker.training.sink import MemorySink

pytestmark = pytest.mark.integration

FAST_RECOVERY = {
    "BNLAB_HEARTBEAT_EVERY_S": "0.5",
    "BNLAB_HEARTBEAT_STALE_S": "3",
    "BNLAB_REAP_EVERY_S": "1",
    "BNLAB_REQUEUE_AFTER_S": "3",
    "BNLAB_CHECKPOINT_EVERY_S": "0.3",
    "BNLAB_FLUSH_EVERY_S": "0.2",
    "BNLAB_TORCH_THREADS": "1",
    "BNLAB_MAX_WORKER_LOSSES": "2",
}

# Long enough to interrupt mid-way; dropout makes the resume depend on the saved RNG state.
LONG: dict[str, Any] = {
    "name": "long",
    "dataset": {"name": "digits"},
    "variants": [
        {"name": "plain", "model": {"kind": "mlp", "hidden": [32]}},
        {"name": "dropout", "model": {"kind": "mlp", "hidden": [32], "dropout": 0.3}},
    ],
    "training": {"epochs": 40, "batch_size": 64},
    "probes": {"every": 50},
}


@pytest.fixture(scope="module")
def redis() -> Iterator[ThrowawayRedis]:
    """A redis-server of this module's own, which it may stop and start at will."""
    server = ThrowawayRedis()
    try:
        server.start()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recovery_stack(
    pg_databases: PostgresDatabases, redis: ThrowawayRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {
        **HERMETIC,
        "BNLAB_DATABASE_URL": pg_databases.create(),
        "BNLAB_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
        "BNLAB_DATA_DIR": str(tmp_path_factory.mktemp("recovery")),
        **FAST_RECOVERY,
    }
    with Stack(env=env, log_dir=ARTIFACTS / "logs" / "recovery") as running:
        yield running


def submit(stack: Stack, spec: dict) -> str:
    status, experiment = stack.request("POST", "/api/v1/experiments", {"spec": spec})
    assert status == 201, experiment
    return str(experiment["id"])


def wait_progress(stack: Stack, experiment_id: str, at_least: float) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, experiment = stack.request("GET", f"/api/v1/experiments/{experiment_id}")
        if experiment["status"] == "running" and experiment["progress"] >= at_least:
            return dict(experiment)
        time.sleep(0.05)
    raise TimeoutError(f"experiment {experiment_id} never reached progress {at_least}")


def wait_attempt(stack: Stack, experiment_id: str, attempt: int) -> dict:
    """The experiment once it runs its `attempt`-th claim."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, experiment = stack.request("GET", f"/api/v1/experiments/{experiment_id}")
        if experiment["status"] == "running" and experiment["attempt"] == attempt:
            return dict(experiment)
        time.sleep(0.1)
    raise TimeoutError(f"experiment {experiment_id} never ran attempt {attempt}")


def losses(stack: Stack, experiment: dict) -> dict[str, tuple[list[int], list[float]]]:
    out = {}
    for run in experiment["runs"]:
        _, body = stack.request("GET", f"/api/v1/runs/{run['id']}/metrics?key=train_loss")
        series = body["series"]["train_loss"]
        out[run["variant"]] = (series["steps"], series["values"])
    return out


def uninterrupted(spec: dict) -> dict[str, list[float]]:
    sink = MemorySink()
    train(ExperimentSpec.model_validate(spec), sink, device="cpu")
    return {
        v["name"]: [value for _, value in sink.series(v["name"], "train_loss")]
        for v in spec["variants"]
    }


def assert_same_as_uninterrupted(stack: Stack, experiment: dict, spec: dict) -> None:
    stored = losses(stack, experiment)
    reference = uninterrupted(spec)
    for variant, (steps, values) in stored.items():
        assert steps == list(range(1, len(reference[variant]) + 1)), "one value per step"
        assert values == pytest.approx(reference[variant], rel=1e-6, abs=1e-7)


def test_sigkilled_worker_loses_nothing_and_resumes_exactly(recovery_stack: Stack) -> None:
    experiment_id = submit(recovery_stack, LONG)
    wait_progress(recovery_stack, experiment_id, 0.3)
    recovery_stack.stop("worker", sig=signal.SIGKILL)
    recovery_stack.start_worker()
    wait_attempt(recovery_stack, experiment_id, 2)
    final = recovery_stack.wait_finished(experiment_id, timeout_s=120)
    assert final["status"] == "succeeded" and final["attempt"] == 2
    assert_same_as_uninterrupted(recovery_stack, final, LONG)


def test_sigterm_checkpoints_hands_back_and_exits_by_itself(recovery_stack: Stack) -> None:
    experiment_id = submit(recovery_stack, LONG)
    wait_progress(recovery_stack, experiment_id, 0.3)
    worker = recovery_stack.processes["worker"]
    # Half of compose's stop_grace_period; bench/bench_recovery.py prints how long it takes.
    recovery_stack.stop("worker", sig=signal.SIGTERM, timeout_s=30)
    assert worker.returncode != -signal.SIGKILL, "it exited by itself, before being killed"
    _, handed_back = recovery_stack.request("GET", f"/api/v1/experiments/{experiment_id}")
    assert handed_back["status"] == "queued" and 0.3 <= handed_back["progress"] < 1
    recovery_stack.start_worker()
    final = recovery_stack.wait_finished(experiment_id, timeout_s=120)
    assert final["status"] == "succeeded" and final["attempt"] == 2
    assert_same_as_uninterrupted(recovery_stack, final, LONG)


def test_an_experiment_that_keeps_losing_its_worker_fails_readably(recovery_stack: Stack) -> None:
    # What an experiment that runs its worker out of memory looks like: lost again and again.
    experiment_id = submit(recovery_stack, LONG)
    for attempt in (1, 2):
        wait_attempt(recovery_stack, experiment_id, attempt)
        wait_progress(recovery_stack, experiment_id, 0.1 * attempt)
        recovery_stack.stop("worker", sig=signal.SIGKILL)
        recovery_stack.start_worker()
    final = recovery_stack.wait_finished(experiment_id, timeout_s=60)
    assert final["status"] == "failed" and final["attempt"] == 2, "not a third worker"
    assert "lost 2 times" in final["error"] and "BNLAB_MAX_WORKER_LOSSES" in final["error"]
    assert {r["status"] for r in final["runs"]} == {"failed"}
    assert losses(recovery_stack, final)["plain"][0], "its rows are kept"


def test_a_worker_presumed_dead_lets_go_when_it_wakes(recovery_stack: Stack) -> None:
    # Longer than LONG, so it is still training when the pause lands.
    spec = {**LONG, "training": {**LONG["training"], "epochs": 120}}
    experiment_id = submit(recovery_stack, spec)
    wait_progress(recovery_stack, experiment_id, 0.2)
    paused = recovery_stack.processes["worker"]
    recovery_stack.start_worker("spare")
    try:
        paused.send_signal(signal.SIGSTOP)  # alive, but silent past the stale limit
        try:
            wait_attempt(recovery_stack, experiment_id, 2)  # the spare took it over
        finally:
            paused.send_signal(signal.SIGCONT)
        final = recovery_stack.wait_finished(experiment_id, timeout_s=120)
    finally:
        recovery_stack.stop("spare")
    assert final["status"] == "succeeded" and final["attempt"] == 2
    # The woken worker trained on from where it was paused: every row it wrote after losing
    # the experiment would be stray; the stored losses are exactly an uninterrupted run's.
    assert_same_as_uninterrupted(recovery_stack, final, spec)
    log = (ARTIFACTS / "logs" / "recovery" / "worker.log").read_text()
    assert f"experiment {experiment_id} was given to another worker; this one let go" in log


def test_cancel_while_the_worker_is_dead_ends_cancelled(recovery_stack: Stack) -> None:
    experiment_id = submit(recovery_stack, LONG)
    wait_progress(recovery_stack, experiment_id, 0.2)
    recovery_stack.stop("worker", sig=signal.SIGKILL)
    status, flagged = recovery_stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel")
    assert status == 200 and flagged["status"] == "running"  # nobody is there to stop it yet
    recovery_stack.start_worker()
    final = recovery_stack.wait_finished(experiment_id, timeout_s=60)
    assert final["status"] == "cancelled" and final["attempt"] == 1, "it must not train again"
    assert {r["status"] for r in final["runs"]} == {"cancelled"}
    steps, _ = losses(recovery_stack, final)["plain"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 0, "its rows are kept"


def test_cancel_then_sigterm_ends_cancelled_not_queued(recovery_stack: Stack) -> None:
    experiment_id = submit(recovery_stack, LONG)
    wait_progress(recovery_stack, experiment_id, 0.2)
    # Whichever the worker sees first, the cancel or the shutdown, the experiment ends cancelled.
    recovery_stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel")
    recovery_stack.stop("worker", sig=signal.SIGTERM, timeout_s=30)
    _, stopped = recovery_stack.request("GET", f"/api/v1/experiments/{experiment_id}")
    recovery_stack.start_worker()
    assert stopped["status"] == "cancelled", stopped


def test_redis_restart_loses_no_experiment(recovery_stack: Stack, redis: ThrowawayRedis) -> None:
    running_id = submit(recovery_stack, LONG)
    wait_progress(recovery_stack, running_id, 0.1)
    small = {**LONG, "name": "small", "training": {"epochs": 2, "batch_size": 64}}
    queued_ids = [submit(recovery_stack, small) for _ in range(3)]
    redis.stop()  # this Redis keeps nothing on disk: the queued messages are gone
    time.sleep(1.0)
    redis.start()
    for experiment_id in [running_id, *queued_ids]:
        final = recovery_stack.wait_finished(experiment_id, timeout_s=180)
        assert final["status"] == "succeeded", (experiment_id, final.get("error"))


def test_messages_the_broker_lost_are_sent_again_at_once(
    recovery_stack: Stack, redis: ThrowawayRedis
) -> None:
    busy = submit(recovery_stack, {**LONG, "training": {**LONG["training"], "epochs": 4000}})
    wait_progress(recovery_stack, busy, 0.01)
    waiting = submit(recovery_stack, {**LONG, "name": "small", "training": {"epochs": 2}})
    # Re-sent about 4 s and 11 s after it was queued (3 s, then 6 s, each plus up to a reap
    # period); by the backoff alone, the next re-send would come 12 s later, after 23 s or so.
    time.sleep(14)
    lost = subprocess.run(
        ["redis-cli", "-p", str(redis.port), "del", "any"], capture_output=True, text=True
    )
    assert lost.stdout.strip() == "1", "the waiting experiment's messages were in the queue"
    recovery_stack.request("POST", f"/api/v1/experiments/{busy}/cancel")
    final = recovery_stack.wait_finished(waiting, timeout_s=60)
    assert final["status"] == "succeeded"
    # Its messages were all gone, so it started from the send that followed, which came before
    # its backoff allowed one: the k-th re-send waits 3 s x 2^(k-1) after the send before it.
    # Both times are the service's own records: the log's "unclaimed since" of the last
    # re-send (the send before it) and the claim's started_at (after it).
    log = (ARTIFACTS / "logs" / "recovery" / "worker.log").read_text()
    group = final["groups"][0]["id"]
    sends = re.findall(rf"seed group {group} unclaimed since (.+?); sent again", log)
    assert len(sends) >= 2, f"re-sent before its messages were lost, then after: {sends}"
    gap = timedelta(seconds=3 * 2 ** (len(sends) - 1))
    backoff_due = datetime.fromisoformat(sends[-1]) + gap
    assert datetime.fromisoformat(final["started_at"]) < backoff_due, "it waited for its backoff"


def test_diverging_run_ends_diverged_without_nan_rows(recovery_stack: Stack) -> None:
    spec = {
        "name": "diverges",
        "dataset": {"name": "wide-scale", "n": 512},
        "variants": [
            {"name": "raw", "model": {"kind": "mlp", "hidden": [16]}},
            {
                "name": "normalized",
                "model": {"kind": "mlp", "hidden": [16]},
                "normalize_inputs": True,
            },
        ],
        "training": {"epochs": 5, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 5.0}},
    }
    final = recovery_stack.wait_finished(submit(recovery_stack, spec), timeout_s=60)
    assert final["status"] == "succeeded"
    raw = next(r for r in final["runs"] if r["variant"] == "raw")
    assert raw["status"] == "diverged" and raw["diverged_step"] >= 1
    normalized = next(r for r in final["runs"] if r["variant"] == "normalized")
    assert normalized["status"] == "succeeded", "the other variant trains on"
    steps, _ = losses(recovery_stack, final)["normalized"]
    assert steps == list(range(1, 5 * 8 + 1))  # 512 examples, batch 64: 8 steps an epoch
    steps, values = losses(recovery_stack, final)["raw"]
    assert all(v == v and abs(v) != float("inf") for v in values)
    assert not steps or max(steps) < raw["diverged_step"]
