"""Bad input gets a clear 4xx naming what is wrong, and nothing is stored (embedded default)."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient


def experiment_count(client: TestClient) -> int:
    return len(client.get("/api/v1/experiments").json()["items"])


def test_unknown_preset_lists_the_presets(client: TestClient) -> None:
    response = client.post("/api/v1/experiments", json={"preset": "nope"})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert "seed-bn-mlp" in detail["msg"] and detail["loc"] == ["body", "preset"]
    assert experiment_count(client) == 0


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/api/v1/experiments", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_out_of_range_override_names_the_field(client: TestClient) -> None:
    body = {"preset": "seed-bn-mlp", "overrides": {"training": {"batch_size": 0}}}
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-2:] == ["training", "batch_size"]
    assert experiment_count(client) == 0


def test_kernel_larger_than_input_names_the_block(client: TestClient) -> None:
    model = {"kind": "cnn", "blocks": [{"channels": 4, "kernel": 9}]}
    body = {
        "name": "too-big-kernel",
        "dataset": {"name": "digits"},
        "variants": [{"name": "cnn", "model": model}],
    }
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "blocks[0]" in message and "8" in message


def test_missing_offline_dataset_says_what_to_do(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Embedded with downloads off, the API's disk is the worker's: cifar10 can surely not be had.
    monkeypatch.setenv("BNLAB_ALLOW_DOWNLOAD", "false")
    client: TestClient = request.getfixturevalue("client")  # made with downloads off
    body = {"preset": "seed-bn-mlp", "overrides": {"dataset": {"name": "cifar10"}}}
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert "BNLAB_DATASETS_DIR" in detail["msg"] and "cifar10" in detail["msg"]
    assert detail["loc"] == ["body", "spec", "dataset", "name"]
    assert experiment_count(client) == 0


def test_too_many_steps_is_refused_with_the_limit(client: TestClient) -> None:
    body = {
        "preset": "seed-dropout",
        "overrides": {"training": {"epochs": 100_000, "seeds": list(range(32))}},
    }
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    assert "BNLAB_MAX_TOTAL_STEPS" in response.json()["detail"][0]["msg"]


def test_unknown_ids_are_404(client: TestClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/v1/experiments/{missing}").status_code == 404
    assert client.post(f"/api/v1/experiments/{missing}/cancel").status_code == 404
    assert client.get(f"/api/v1/runs/{missing}/metrics").status_code == 404
    assert client.get("/api/v1/presets/nope").status_code == 404


def test_preset_submission_is_stored_queued_with_its_runs(client: TestClient) -> None:
    response = client.post("/api/v1/experiments", json={"preset": "seed-dropout"})
    assert response.status_code == 201
    experiment = response.json()
    assert response.headers["location"] == f"/api/v1/experiments/{experiment['id']}"
    assert experiment["status"] == "queued" and experiment["attempt"] == 0
    assert [r["variant"] for r in experiment["runs"]] == ["plain", "dropout-0.2", "dropout-0.5-0.2"]
    cancelled = client.post(f"/api/v1/experiments/{experiment['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/experiments/{experiment['id']}/cancel").status_code == 409


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to open a connection or look a host up is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize(
    "body",
    [
        {"preset": "seed-bn-mlp"},
        {"preset": "seed-bn-cnn", "overrides": {"dataset": {"name": "cifar10"}}},
        {
            "name": "mnist-only",
            "dataset": {"name": "mnist"},
            "variants": [{"name": "mlp", "model": {"kind": "mlp", "hidden": [8]}}],
        },
    ],
)
def test_submissions_answer_at_once_without_touching_the_network(
    client: TestClient, no_network: list[object], body: dict[str, object]
) -> None:
    # Data sets the API's disk lacks but a worker may have or download: the worker decides.
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 201, response.text
    assert no_network == []
    experiment = response.json()
    assert experiment["dataset"] is None  # recorded by the worker once it has the data


def test_a_preset_keeps_its_data_set_and_its_fallback(client: TestClient) -> None:
    # No switch on the API's disk: the spec asks for mnist, fashion-mnist if mnist cannot be had.
    response = client.post("/api/v1/experiments", json={"preset": "seed-bn-mlp"})
    dataset = response.json()["spec"]["dataset"]
    assert (dataset["name"], dataset["fallback"]) == ("mnist", "fashion-mnist")
    # Naming a data set turns the preset's fallback off.
    body = {"preset": "seed-bn-mlp", "overrides": {"dataset": {"name": "digits"}}}
    dataset = client.post("/api/v1/experiments", json=body).json()["spec"]["dataset"]
    assert (dataset["name"], dataset["fallback"]) == ("digits", None)


def test_a_fallback_of_another_shape_is_refused(client: TestClient) -> None:
    body = {"preset": "seed-bn-mlp", "overrides": {"dataset": {"fallback": "cifar10"}}}
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "spec", "dataset", "fallback"] and "cifar10" in detail["msg"]
    assert experiment_count(client) == 0
