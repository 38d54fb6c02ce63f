"""Bad input gets a clear 4xx naming what is wrong, and nothing is stored (embedded default)."""

from __future__ import annotations

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


def test_missing_offline_dataset_says_what_to_do(client: TestClient) -> None:
    body = {"preset": "seed-bn-mlp", "overrides": {"dataset": {"name": "cifar10"}}}
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    assert "BNLAB_DATASETS_DIR" in response.json()["detail"][0]["msg"]


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


@pytest.mark.parametrize("online", [True, False])
def test_presets_use_mnist_when_it_can_be_downloaded(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, online: bool
) -> None:
    # The mirrors are the outside border: whether one answers is all that is mocked here.
    import api.submission

    monkeypatch.setattr(api.submission, "_reachable", lambda url: online)
    response = client.post("/api/v1/experiments", json={"preset": "seed-bn-mlp"})
    assert response.status_code == 201
    dataset = response.json()["spec"]["dataset"]["name"]
    assert dataset == ("mnist" if online else "fashion-mnist")
