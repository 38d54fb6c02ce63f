"""Sweeps as a user runs them: submitted over HTTP, trained by the real worker, read back."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest

from scripts.stack import Stack

pytestmark = pytest.mark.integration

TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "digits"},
    "variants": [
        {"name": "plain", "model": {"kind": "mlp", "hidden": [16]}},
        {"name": "bn", "model": {"kind": "mlp", "hidden": [16], "batchnorm": "before_activation"}},
    ],
    "training": {"epochs": 3, "batch_size": 64, "seeds": [0, 1]},
    "probes": {"every": 50},
}
LR = "training.optimizer.lr"


def wait_sweep(stack: Stack, sweep_id: str, timeout_s: float = 300) -> dict:
    """Poll a sweep until every point has finished."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, sweep = stack.request("GET", f"/api/v1/sweeps/{sweep_id}")
        assert status == 200, sweep
        if sweep["status"] not in ("queued", "running"):
            return dict(sweep)
        time.sleep(0.2)
    points = [(p["status"], p["progress"]) for p in sweep["points"]]
    raise TimeoutError(f"sweep {sweep_id} still running after {timeout_s} s: {points}")


def listed(stack: Stack) -> tuple[list[str], list[str]]:
    _, sweeps = stack.request("GET", "/api/v1/sweeps?limit=200")
    _, experiments = stack.request("GET", "/api/v1/experiments?limit=200")
    return [s["id"] for s in sweeps["items"]], [e["id"] for e in experiments["items"]]


def test_a_sweep_is_trained_and_its_findings_and_plot_read_back(stack: Stack) -> None:
    body = {"name": "tiny-lr", "base": {"spec": TINY}, "axes": {LR: [0.01, 0.3]}}
    status, sweep = stack.request("POST", "/api/v1/sweeps", body)
    assert status == 201, sweep
    final = wait_sweep(stack, sweep["id"])
    assert final["status"] == "succeeded" and final["progress"] == 1.0
    assert [p["values"] for p in final["points"]] == [{LR: 0.01}, {LR: 0.3}]
    assert {p["status"] for p in final["points"]} == {"succeeded"}
    assert {p["attempt"] for p in final["points"]} == {1}
    first = final["points"][0]
    _, experiment = stack.request("GET", f"/api/v1/experiments/{first['experiment_id']}")
    assert experiment["sweep_id"] == sweep["id"]
    assert experiment["spec"]["training"]["optimizer"]["lr"] == 0.01
    _, listing = stack.request("GET", "/api/v1/sweeps")
    assert listing["items"][0]["id"] == sweep["id"]

    status, findings = stack.request("GET", f"/api/v1/sweeps/{sweep['id']}/findings")
    assert status == 200, findings
    assert findings["metric"] == "test_accuracy" and findings["variants"] == ["plain", "bn"]
    for point in findings["points"]:
        for variant in ("plain", "bn"):
            measures = point["variants"][variant]
            assert measures["final"]["n"] == 2 and 0 < measures["final"]["mean"] <= 1
            assert measures["early_train_loss"]["n"] == 2
    assert set(findings["best"][LR]) == {"plain", "bn"}
    assert any("suits each best" in s for s in findings["statements"])

    plots = f"{stack.url}/api/v1/sweeps/{sweep['id']}/plots/sensitivity"
    status, data = stack.request("GET", f"/api/v1/sweeps/{sweep['id']}/plots/sensitivity.json")
    assert status == 200 and data["x"] == [0.01, 0.3] and data["log_x"]
    bn = next(s for s in data["series"] if s["label"] == "bn")
    assert bn["mean"][0] == pytest.approx(findings["points"][0]["variants"]["bn"]["final"]["mean"])
    request = urllib.request.Request(f"{plots}.png")
    if stack.token:
        request.add_header("Authorization", f"Bearer {stack.token}")
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read().startswith(b"\x89PNG")


def test_a_bad_sweep_is_refused_naming_the_point_and_stores_nothing(stack: Stack) -> None:
    before = listed(stack)
    body = {"base": {"spec": TINY}, "axes": {LR: [0.01, 0.1, -0.1]}}
    status, reply = stack.request("POST", "/api/v1/sweeps", body)
    assert status == 422
    error = reply["detail"][0]
    assert error["loc"] == ["body", "points", 2, "training", "optimizer", "lr"]
    assert error["point"]["values"] == {LR: -0.1}
    body = {"base": {"spec": TINY}, "axes": {"variants.nope.model.dropout": [0.1]}}
    status, reply = stack.request("POST", "/api/v1/sweeps", body)
    assert status == 422 and reply["detail"][0]["loc"][-1] == "variants.nope.model.dropout"
    assert listed(stack) == before


def test_cancel_stops_every_point(stack: Stack) -> None:
    long = {**TINY, "name": "long", "training": {**TINY["training"], "epochs": 2000}}
    body = {"base": {"spec": long}, "axes": {LR: [0.01, 0.02, 0.03]}}
    status, sweep = stack.request("POST", "/api/v1/sweeps", body)
    assert status == 201
    deadline = time.monotonic() + 60
    while stack.request("GET", f"/api/v1/sweeps/{sweep['id']}")[1]["status"] != "running":
        assert time.monotonic() < deadline, "no point started"
        time.sleep(0.1)
    status, cancelled = stack.request("POST", f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert status == 200
    final = wait_sweep(stack, sweep["id"], timeout_s=60)
    assert final["status"] == "cancelled"
    assert {p["status"] for p in final["points"]} == {"cancelled"}
    # Only the first point ever started; the others never did.
    assert [p["started_at"] is None for p in final["points"]][1:] == [True, True]


def test_owners_are_isolated(pg_stack: Stack) -> None:
    # On PostgreSQL + Redis, where tokens are on: the embedded default has one owner.
    stack = pg_stack
    status, sweep = stack.request(
        "POST", "/api/v1/sweeps", {"base": {"spec": TINY}, "axes": {LR: [0.05]}}
    )
    assert status == 201
    other = stack.create_token("someone-else")
    base = f"/api/v1/sweeps/{sweep['id']}"
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/findings"),
        ("GET", f"{base}/plots/sensitivity.json"),
        ("POST", f"{base}/cancel"),
    ]:
        assert stack.request(method, path, token=other)[0] == 404, path
    _, theirs = stack.request("GET", "/api/v1/sweeps", token=other)
    assert theirs["items"] == []
    assert wait_sweep(stack, sweep["id"])["status"] == "succeeded"
