"""Exports read back with their readers' own code (TensorBoard, csv), /metrics with Prometheus'
parser, owners kept apart: on both stacks."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorboard.backend.event_processing.event_accumulator import (
    HISTOGRAMS,
    TENSORS,
    EventAccumulator,
)
from tensorboard.util import tensor_util

from bnlab_client import ApiError, Client
from scripts.stack import Stack

pytestmark = pytest.mark.integration

SMALL = {"training": {"epochs": 40, "seeds": [0, 1]}, "probes": {"every": 10}}


@pytest.fixture(scope="module")
def finished(stack: Stack) -> dict[str, Any]:
    return train_small(stack)


def train_small(stack: Stack) -> dict[str, Any]:
    """A small seed-dropout study, trained to the end."""
    client = Client(stack.url, stack.token)
    experiment = client.submit(preset="seed-dropout", overrides=SMALL)
    experiment = client.wait(experiment["id"], timeout_s=300)
    assert experiment["status"] == "succeeded", experiment["error"]
    return experiment


def test_tensorboard_round_trip(stack: Stack, finished: dict[str, Any], tmp_path: Path) -> None:
    client = Client(stack.url, stack.token)
    client.export_tensorboard(finished["id"], tmp_path)
    for run in finished["runs"]:
        folder = tmp_path / run["variant"] / f"seed-{run['seed']}"
        events = EventAccumulator(str(folder), size_guidance={TENSORS: 0, HISTOGRAMS: 0})
        events.Reload()
        series = client.metrics(run["id"]).series
        assert sorted(events.Tags()["tensors"]) == sorted(series)
        for key, expected in series.items():
            read = events.Tensors(key)
            assert [e.step for e in read] == expected.steps
            assert [
                tensor_util.make_ndarray(e.tensor_proto).item() for e in read
            ] == expected.values
        captures = client.histograms(run["id"], kind="activation")["histograms"]
        assert captures
        for capture in captures:
            read = {e.step: e for e in events.Histograms(f"activations/{capture['layer']}")}
            value = read[capture["step"]].histogram_value
            assert list(value.bucket_limit) == capture["edges"]
            assert list(value.bucket) == [0, *capture["counts"]]


def test_histograms_csv_has_every_bin(
    stack: Stack, finished: dict[str, Any], tmp_path: Path
) -> None:
    client = Client(stack.url, stack.token)
    target = client.export_histograms_csv(finished["id"], tmp_path / "h.csv")
    with target.open() as f:
        rows = list(csv.DictReader(f))
    run = finished["runs"][0]
    for capture in client.histograms(run["id"])["histograms"]:
        bins = [
            r
            for r in rows
            if r["run"] == run["id"]
            and r["layer"] == capture["layer"]
            and r["kind"] == capture["kind"]
            and int(r["step"]) == capture["step"]
        ]
        assert [int(r["count"]) for r in bins] == capture["counts"]
        assert [float(r["left"]) for r in bins] == capture["edges"][:-1]
        assert float(bins[-1]["right"]) == capture["edges"][-1]


def test_metrics_endpoint_parses_and_shows_the_finished_experiment(
    stack: Stack, finished: dict[str, Any]
) -> None:
    # One answered read of the experiment to count (clients now wait on its /wait route).
    status, _ = stack.request("GET", f"/api/v1/experiments/{finished['id']}")
    assert status == 200
    # Each worker reports its steps at its heartbeat: the beat after the finish counts them.
    deadline = time.monotonic() + 30
    while True:
        text = Client(stack.url, stack.token).request("GET", "/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        steps = sum(s.value for s in families["bnlab_training_steps"].samples)
        if steps > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_status = {s.labels["status"]: s.value for s in families["bnlab_experiments"].samples}
    assert by_status["succeeded"] >= 1
    assert families["bnlab_workers_alive"].samples[0].value >= 1
    assert {s.labels["queue"] for s in families["bnlab_queue_depth"].samples} == {
        "gpu",
        "cpu",
        "any",
    }
    assert steps > 0
    answered = [
        s
        for s in families["bnlab_http_requests"].samples
        if s.name == "bnlab_http_requests_total"
        and s.labels["route"] == "/api/v1/experiments/{experiment_id}"
        and s.labels["status"] == "200"
    ]
    assert answered and answered[0].value >= 1
    assert "bnlab_http_request_duration_seconds" in families


def test_exports_are_the_owners_only(pg_stack: Stack) -> None:
    # On PostgreSQL + Redis, where tokens are on: the embedded default has one owner.
    stack = pg_stack
    finished = train_small(stack)
    other = Client(stack.url, stack.create_token("someone-else"))
    for path in ("export.csv", "export/histograms.csv", "export/tensorboard.zip"):
        with pytest.raises(ApiError) as caught:
            other.request("GET", f"/api/v1/experiments/{finished['id']}/{path}")
        assert caught.value.status == 404
    # The fleet is shared, but another owner's experiment is only "busy", never named.
    assert all(w["experiment_id"] is None for w in other.workers()["workers"])
