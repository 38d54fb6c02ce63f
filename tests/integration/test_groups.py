"""One experiment's seed groups spread over every worker, on PostgreSQL + Redis.

Two real worker processes share one database and one broker; an experiment with four seeds is
trained by both, each group claimed once, each step stored once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from scripts.stack import Stack

pytestmark = pytest.mark.integration

FOUR_SEEDS: dict[str, Any] = {
    "name": "four-seeds",
    "dataset": {"name": "digits"},
    "variants": [
        {"name": "plain", "model": {"kind": "mlp", "hidden": [32]}},
        {"name": "bn", "model": {"kind": "mlp", "hidden": [32], "batchnorm": "before_activation"}},
    ],
    "training": {"epochs": 12, "batch_size": 64, "seeds": [0, 1, 2, 3]},
    "probes": {"every": 50},
}


def test_the_seed_groups_of_one_experiment_are_trained_by_both_workers(two_workers: Stack) -> None:
    status, experiment = two_workers.request("POST", "/api/v1/experiments", {"spec": FOUR_SEEDS})
    assert status == 201, experiment
    assert [group["seeds"] for group in experiment["groups"]] == [[0], [1], [2], [3]]
    final = two_workers.wait_finished(experiment["id"], timeout_s=300)
    assert final["status"] == "succeeded" and final["progress"] == 1.0
    assert [(g["status"], g["attempt"]) for g in final["groups"]] == [("succeeded", 1)] * 4
    workers = {run["worker"] for run in final["runs"]}
    assert len(workers) == 2, f"every group went to one worker: {workers}"
    assert {run["device"] for run in final["runs"]} == {"cpu"}
    stored = []
    for run in final["runs"]:
        _, metrics = two_workers.request("GET", f"/api/v1/runs/{run['id']}/metrics?key=train_loss")
        stored.append(metrics["series"]["train_loss"]["steps"])
    assert stored[0] and len(stored[0]) % 12 == 0, "twelve epochs of whole steps"
    assert all(steps == list(range(1, len(stored[0]) + 1)) for steps in stored), "a step twice"
    # The findings compare the variants across all four seeds, whoever trained them.
    _, findings = two_workers.request("GET", f"/api/v1/experiments/{experiment['id']}/findings")
    assert findings == final["findings"]


def test_cancel_ends_running_and_waiting_groups(two_workers: Stack) -> None:
    spec = {**FOUR_SEEDS, "training": {**FOUR_SEEDS["training"], "epochs": 200}}
    _, experiment = two_workers.request("POST", "/api/v1/experiments", {"spec": spec})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, now = two_workers.request("GET", f"/api/v1/experiments/{experiment['id']}")
        if sum(group["status"] == "running" for group in now["groups"]) == 2:
            break
        time.sleep(0.1)
    else:
        raise TimeoutError("the two workers never trained two groups at once")
    status, cancelled = two_workers.request(
        "POST", f"/api/v1/experiments/{experiment['id']}/cancel"
    )
    assert status == 200 and cancelled["status"] in ("running", "cancelled")
    final = two_workers.wait_finished(experiment["id"], timeout_s=60)
    assert final["status"] == "cancelled"
    assert {group["status"] for group in final["groups"]} == {"cancelled"}
    assert {group["attempt"] for group in final["groups"]} <= {0, 1}, "none trained again"
