"""Limits answer with a clear 4xx: body size, NaN, odd names, out-of-range numbers, size caps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

MIB = 1024 * 1024
DIGITS: dict[str, Any] = {
    "name": "limits",
    "dataset": {"name": "digits"},
    "variants": [{"name": "plain", "model": {"kind": "mlp", "hidden": [16]}}],
    "training": {"epochs": 1, "batch_size": 64},
}


def spec(**parts: Any) -> dict[str, Any]:
    """DIGITS with some top-level parts replaced."""
    return {**DIGITS, **parts}


def post_raw(client: TestClient, body: bytes | Iterator[bytes]) -> Any:
    return client.post(
        "/api/v1/experiments", content=body, headers={"Content-Type": "application/json"}
    )


def count(client: TestClient) -> int:
    return len(client.get("/api/v1/experiments").json()["items"])


def test_body_over_one_mib_with_content_length_is_413(client: TestClient) -> None:
    padded = json.dumps(spec()).encode()[:-1] + b', "pad": "' + b"x" * MIB + b'"}'
    response = post_raw(client, padded)
    assert response.status_code == 413
    assert "BNLAB_MAX_BODY_BYTES" in response.json()["detail"]
    assert count(client) == 0


def test_chunked_body_over_one_mib_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(20):
            yield b"x" * (64 * 1024)
        yield b'"}'

    response = post_raw(client, chunks())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def test_small_chunked_body_still_works(client: TestClient) -> None:
    response = post_raw(
        client, iter([json.dumps(spec())[:20].encode(), json.dumps(spec())[20:].encode()])
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"preset": NaN}', "preset"),
        (
            b'{"preset": "seed-dropout", "overrides": {"training": {"optimizer": {"lr": NaN}}}}',
            "lr",
        ),
        (json.dumps(spec(dataset={"name": "digits", "noise": float("inf")})).encode(), "noise"),
        (json.dumps(spec(training={"optimizer": {"lr": float("-inf")}})).encode(), "lr"),
        (json.dumps(spec(training={"epochs": 1e400})).encode(), "epochs"),
    ],
)
def test_nan_and_infinity_are_422_naming_the_field(
    client: TestClient, body: bytes, field: str
) -> None:
    response = post_raw(client, body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == field


@pytest.mark.parametrize("name", ["../etc/passwd", "a b", "<script>", "x" * 65, "", "-lead", "é"])
def test_odd_names_are_refused(client: TestClient, name: str) -> None:
    for body in (
        spec(name=name),
        spec(variants=[{"name": name, "model": DIGITS["variants"][0]["model"]}]),
    ):
        response = client.post("/api/v1/experiments", json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] == "name"
    assert count(client) == 0


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 10**30}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"seeds": [2**40]}, 0),
        ({"optimizer": {"lr": 0}}, "lr"),
        ({"eval_every": 10**12}, "eval_every"),
    ],
)
def test_out_of_range_numbers_name_the_field(
    client: TestClient, training: dict[str, Any], field: str | int
) -> None:
    response = client.post("/api/v1/experiments", json=spec(training=training))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_parameter_count_cap(client: TestClient) -> None:
    huge = [{"name": "huge", "model": {"kind": "mlp", "hidden": [65536, 65536]}}]
    response = client.post("/api/v1/experiments", json=spec(variants=huge))
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert "BNLAB_MAX_PARAMETERS" in detail["msg"] and detail["loc"][-2:] == [0, "model"]
    assert count(client) == 0


def test_probe_volume_cap(client: TestClient) -> None:
    # digits at batch 1: 1,437 steps an epoch; 400 epochs probed every step is 574,800
    # captures of 3 layers (hidden1.linear, hidden1.act, output.linear): 1,724,400 histograms.
    body = spec(training={"epochs": 400, "batch_size": 1}, probes={"every": 1})
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert "BNLAB_MAX_PROBE_HISTOGRAMS" in detail["msg"] and detail["loc"][-1] == "every"
    assert count(client) == 0


def test_probe_cap_counts_every_histogram_not_just_captures(client: TestClient) -> None:
    # 287 captures only, but each stores a histogram of every layer, weight and gradient of
    # 16 deep variants over 3 seeds: 287 x 16 x (24 layers + 2 x 16 tensors) x 3 = 771,456.
    deep = {"kind": "mlp", "hidden": [8] * 8, "batchnorm": "before_activation", "dropout": 0.1}
    variants = [{"name": f"v{i}", "model": deep} for i in range(16)]
    training = {"epochs": 20, "batch_size": 100, "seeds": [0, 1, 2]}
    probes = {"every": 1, "weights": True, "gradients": True}
    accepted = spec(variants=variants, training={**training, "epochs": 2}, probes=probes)
    assert client.post("/api/v1/experiments", json=accepted).status_code == 201
    body = spec(variants=variants, training=training, probes=probes)
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    assert "BNLAB_MAX_PROBE_HISTOGRAMS" in response.json()["detail"][0]["msg"]
    assert count(client) == 1


def test_caps_follow_the_settings(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config import get_settings

    monkeypatch.setenv("BNLAB_MAX_PARAMETERS", "1000")
    get_settings.cache_clear()
    response = client.post("/api/v1/experiments", json=spec())
    assert response.status_code == 422 and "1,000" in response.json()["detail"][0]["msg"]
    get_settings.cache_clear()


def field_names(node: Any) -> Iterator[str]:
    """Every parameter name and object property name in an OpenAPI document."""
    if isinstance(node, dict):
        if "in" in node and "name" in node:
            yield node["name"]
        yield from node.get("properties", {})
        for child in node.values():
            yield from field_names(child)
    elif isinstance(node, list):
        for child in node:
            yield from field_names(child)


def test_no_operation_takes_a_path_or_url(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    names = {name.lower() for name in field_names(document)}
    assert {"experiment_id", "name", "token"} <= names
    suspicious = {n for n in names if any(w in n for w in ("path", "url", "uri", "file", "dir"))}
    assert suspicious == set()
    assert '"format": "uri"' not in json.dumps(document)
