"""A hung step: a real worker stuck mid-training (its heartbeat thread still beating) loses its
seed group to another worker, which finishes it from the checkpoint with every step once.

The stall is the test-only switch BNLAB_TEST_STALL_AT_STEP, set for the stuck worker alone.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from scripts.stack import Stack
from tests.conftest import ARTIFACTS
from tests.integration.conftest import PostgresDatabases
from tests.integration.test_recovery import (
    FAST_RECOVERY,
    LONG,
    assert_same_as_uninterrupted,
    submit,
    wait_attempt,
)
from tests.servers import ThrowawayRedis

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

LOGS = ARTIFACTS / "logs" / "stall"
STALL_AT_STEP = 120
STALL_FOR_S = 20


@pytest.fixture(scope="module")
def stall_stack(
    pg_databases: PostgresDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    redis = ThrowawayRedis().start()
    env = {
        "BNLAB_DATABASE_URL": pg_databases.create(),
        "BNLAB_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
        "BNLAB_DATA_DIR": str(tmp_path_factory.mktemp("stall")),
        **FAST_RECOVERY,
        "BNLAB_STALL_S": "6",
    }
    stack = Stack(env=env, log_dir=LOGS)
    try:
        yield stack.start(worker=False)
    finally:
        stack.stop()
        redis.stop()


def test_a_hung_step_is_taken_over_and_finished_elsewhere(stall_stack: Stack) -> None:
    stall_stack.worker_env = {"BNLAB_TEST_STALL_AT_STEP": f"{STALL_AT_STEP}:{STALL_FOR_S}"}
    stall_stack.start_worker("stuck")
    experiment_id = submit(stall_stack, LONG)
    first = wait_attempt(stall_stack, experiment_id, 1)
    stall_stack.worker_env = {}
    stall_stack.start_worker("spare")
    # The stuck worker's heartbeat stays fresh: only its step tells that it hangs.
    final = stall_stack.wait_finished(experiment_id, timeout_s=180)
    assert final["status"] == "succeeded" and final["attempt"] == 2
    (group,) = final["groups"]
    stuck_worker = first["groups"][0]["worker"]
    assert group["attempt"] == 2 and group["worker"] not in (None, stuck_worker)
    assert {run["worker"] for run in final["runs"]} == {group["worker"]}, "the spare's runs"
    # Every step exactly once, with an uninterrupted run's numbers.
    assert_same_as_uninterrupted(stall_stack, final, LONG)
    # The stuck worker woke after its group was gone, and let go without a write.
    # (The log may hold earlier runs' lines: wait for this experiment's.)
    let_go = f"experiment {experiment_id} was given to another worker; this one let go"
    deadline = time.monotonic() + STALL_FOR_S + 30
    log = ""
    while time.monotonic() < deadline:
        log = (LOGS / "stuck.log").read_text()
        if let_go in log:
            break
        time.sleep(0.5)
    assert let_go in log
    assert "stalling at step" in log
