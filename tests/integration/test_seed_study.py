"""The first thing a user does: submit the article's BatchNorm study and get its results back."""

from __future__ import annotations

import pytest

from scripts.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def finished(stack: Stack) -> dict[str, object]:
    status, experiment = stack.request("POST", "/api/v1/experiments", {"preset": "seed-bn-mlp"})
    assert status == 201, experiment
    return stack.wait_finished(experiment["id"], timeout_s=240)


def test_seed_study_succeeds_with_both_runs(finished: dict) -> None:
    assert finished["status"] == "succeeded", finished.get("error")
    assert finished["progress"] == 1.0 and finished["attempt"] == 1
    # The worker trained on mnist where it could get it, else on the preset's fallback, and says so.
    dataset = finished["dataset"]
    assert finished["spec"]["dataset"]["name"] == "mnist"
    assert dataset["requested"] == "mnist" and dataset["used"] in ("mnist", "fashion-mnist")
    assert (dataset["reason"] is None) == (dataset["used"] == "mnist")
    assert [(r["variant"], r["status"]) for r in finished["runs"]] == [
        ("plain", "succeeded"),
        ("bn", "succeeded"),
    ]
    assert finished["started_at"] <= finished["finished_at"]


def test_one_loss_per_step_and_test_metrics_per_epoch(stack: Stack, finished: dict) -> None:
    for run in finished["runs"]:
        status, metrics = stack.request("GET", f"/api/v1/runs/{run['id']}/metrics")
        assert status == 200
        series = metrics["series"]
        assert series["train_loss"]["steps"] == list(range(1, 2 * 118 + 1))
        assert series["test_loss"]["steps"] == [118, 236]
        assert series["test_accuracy"]["steps"] == [118, 236]
        assert all(0.0 <= a <= 1.0 for a in series["test_accuracy"]["values"])
        first, last = series["train_loss"]["values"][:10], series["train_loss"]["values"][-10:]
        assert sum(last) < sum(first), "training should lower the loss"


def test_metrics_can_be_polled_since_a_step(stack: Stack, finished: dict) -> None:
    run = finished["runs"][0]
    status, metrics = stack.request(
        "GET", f"/api/v1/runs/{run['id']}/metrics?key=train_loss&since_step=230"
    )
    assert status == 200
    assert list(metrics["series"]) == ["train_loss"]
    assert metrics["series"]["train_loss"]["steps"] == [231, 232, 233, 234, 235, 236]


def test_histograms_of_every_hidden_layer_every_ten_steps(stack: Stack, finished: dict) -> None:
    bn_run = finished["runs"][1]
    status, body = stack.request("GET", f"/api/v1/runs/{bn_run['id']}/histograms?layer=hidden1.bn")
    assert status == 200
    for layer in ("hidden1.linear", "hidden1.bn", "hidden1.act", "hidden2.linear", "hidden2.bn"):
        assert layer in body["layers"]
    captures = body["histograms"]
    assert [c["step"] for c in captures] == list(range(10, 237, 10))
    first = captures[0]
    assert len(first["edges"]) == len(first["counts"]) + 1
    assert sum(first["counts"]) == first["stats"]["count"]
    assert {"mean", "std", "quantiles", "zero_fraction", "drift"} <= set(first["stats"])


def test_listing_shows_newest_first_and_filters(stack: Stack, finished: dict) -> None:
    status, page = stack.request("GET", "/api/v1/experiments?status=succeeded&limit=1")
    assert status == 200
    assert page["items"] and all(e["status"] == "succeeded" for e in page["items"])
    status, queued = stack.request("GET", "/api/v1/experiments?status=queued")
    assert all(e["status"] == "queued" for e in queued["items"])


def test_cancel_of_a_finished_experiment_is_409(stack: Stack, finished: dict) -> None:
    status, _ = stack.request("POST", f"/api/v1/experiments/{finished['id']}/cancel")
    assert status == 409
