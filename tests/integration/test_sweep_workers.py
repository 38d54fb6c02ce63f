"""Two real worker processes on one PostgreSQL and one Redis share a sweep's points."""

from __future__ import annotations

import pytest

from scripts.stack import Stack
from tests.integration.test_sweeps import TINY, wait_sweep

pytestmark = pytest.mark.integration


def test_both_workers_train_points_of_one_sweep_each_exactly_once(two_workers: Stack) -> None:
    spec = {**TINY, "training": {**TINY["training"], "epochs": 4, "seeds": [0]}}
    lrs = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
    body = {"base": {"spec": spec}, "axes": {"training.optimizer.lr": lrs}}
    status, sweep = two_workers.request("POST", "/api/v1/sweeps", body)
    assert status == 201, sweep
    final = wait_sweep(two_workers, sweep["id"], timeout_s=600)
    assert final["status"] == "succeeded"
    points = final["points"]
    # Both worker processes trained some of the points ...
    assert len({p["worker"] for p in points}) == 2, [p["worker"] for p in points]
    # ... and each point was claimed once, and every step of every run stored once.
    assert {p["attempt"] for p in points} == {1}
    steps_per_epoch = -(-1437 // 64)  # digits: 1437 training examples, batch 64
    for p in points:
        _, experiment = two_workers.request("GET", f"/api/v1/experiments/{p['experiment_id']}")
        for run in experiment["runs"]:
            _, metrics = two_workers.request(
                "GET", f"/api/v1/runs/{run['id']}/metrics?key=train_loss"
            )
            steps = metrics["series"]["train_loss"]["steps"]
            assert steps == list(range(1, 4 * steps_per_epoch + 1))
